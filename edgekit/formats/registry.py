"""The format registry: every shipped file format, by name and by file suffix.

    >>> get_format("tflite").runtimes
    ('litert',)
    >>> format_for_path("runs/x/model.onnx").name
    'onnx'

Each format package (`edgekit.formats.tflite`, `edgekit.formats.onnx`) declares one `Format`; code
outside the format packages asks this registry instead of comparing format names or suffixes.
Importing it is cheap: a `Format` names its implementation modules, imported when used.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from edgekit.errors import InputError
from edgekit.formats.base import Format


def _formats() -> dict[str, Format]:
    from edgekit.formats import onnx, tflite

    return {f.name: f for f in (tflite.FORMAT, onnx.FORMAT)}


FORMATS: dict[str, Format] = _formats()


def _unknown(kind: str, value: str, known: list[str]) -> InputError:
    close = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return InputError(f"unknown {kind} '{value}' (known: {', '.join(known)}){hint}")


def get_format(name: str) -> Format:
    """The format called `name` ('tflite', 'onnx'; a leading dot is accepted)."""
    key = str(name).lower().lstrip(".")
    if key not in FORMATS:
        raise _unknown("model format", key, sorted(FORMATS))
    return FORMATS[key]


def format_for_path(path: str | Path) -> Format:
    """The format of a model file, from its suffix; InputError naming the file otherwise."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if fmt.suffix == suffix:
            return fmt
    known = " or ".join(f.suffix for f in FORMATS.values())
    raise InputError(f"{path}: cannot tell the model format from the suffix '{Path(path).suffix}' (expected {known})")


def known_suffixes() -> tuple[str, ...]:
    return tuple(f.suffix for f in FORMATS.values())


def runtime_names() -> tuple[str, ...]:
    """Every runtime some format can run on, in registry order."""
    seen: dict[str, None] = {}
    for fmt in FORMATS.values():
        seen.update(dict.fromkeys(fmt.runtimes))
    return tuple(seen)
