"""The format registry: every shipped file format, by name and by file suffix.

    >>> get_format("tflite").runtimes
    ('litert',)
    >>> format_for_path("runs/x/model.onnx").name
    'onnx'
    >>> from edgekit.precision import plan_for
    >>> [r.key for r in refusals("torch", "tflite", plan_for("int8", "float32", quantization_aware=True))]
    ['qat.io.float32']

Each format package (`edgekit.formats.tflite`, `edgekit.formats.onnx`) declares one `Format`; code
outside the format packages asks this registry instead of comparing format names or suffixes: which
runtimes run a file, which reader reads it, which writer writes a framework's models and what that
writer refuses (`refusals`, read when a recipe is validated). Importing it is cheap: a `Format` names
its implementation modules, imported when used.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any, Optional

from edgekit.errors import InputError
from edgekit.formats.base import Format, Refusal, choices  # noqa: F401  (choices: part of this API)
from edgekit.precision import Plan


def _formats() -> dict[str, Format]:
    from edgekit.formats import onnx, pte, tflite

    return {f.name: f for f in (tflite.FORMAT, onnx.FORMAT, pte.FORMAT)}


FORMATS: dict[str, Format] = _formats()
_BY_SUFFIX: dict[str, Format] = {fmt.suffix: fmt for fmt in FORMATS.values()}


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


def find_format(path: str | Path) -> Optional[Format]:
    """The format of a model file from its suffix, or None when no format has that suffix."""
    return _BY_SUFFIX.get(Path(path).suffix.lower())


def format_for_path(path: str | Path) -> Format:
    """The format of a model file, from its suffix; InputError naming the file otherwise."""
    fmt = find_format(path)
    if fmt is not None:
        return fmt
    known = " or ".join(f.suffix for f in FORMATS.values())
    raise InputError(f"{path}: cannot tell the model format from the suffix '{Path(path).suffix}' (expected {known})")


def default_formats() -> list[str]:
    """The formats a recipe exports when it names none (`Format.by_default`): tflite and onnx."""
    return [name for name, fmt in FORMATS.items() if fmt.by_default]


def known_suffixes() -> tuple[str, ...]:
    return tuple(f.suffix for f in FORMATS.values())


def formats_run_on(runtime: str) -> list[Format]:
    """The formats whose files `runtime` runs."""
    return [fmt for fmt in FORMATS.values() if runtime in fmt.runtimes]


def runtime_names() -> tuple[str, ...]:
    """Every runtime some format can run on, in registry order."""
    seen: dict[str, None] = {}
    for fmt in FORMATS.values():
        seen.update(dict.fromkeys(fmt.runtimes))
    return tuple(seen)


def reader_for_path(path: str | Path, refusal: str):
    """The reader module of a model file's format; InputError `{path}: {refusal} a '<suffix>' file
    (expected .tflite or .onnx)` when the suffix names no format."""
    fmt = find_format(path)
    if fmt is None:
        known = " or ".join(f.suffix for f in FORMATS.values())
        raise InputError(f"{path}: {refusal} a '{Path(path).suffix}' file (expected {known})")
    return importlib.import_module(fmt.reader)


# ---- runtimes --------------------------------------------------------------------------------

def runtime_for_format(fmt: str):
    """The default runtime of format `fmt` ('tflite', 'onnx'; a leading dot is accepted)."""
    from edgekit.runtimes import get_runtime

    return get_runtime(get_format(fmt).default_runtime)


def runtime_for_path(path: str | Path):
    """The default runtime for a model file, chosen by its suffix (.tflite -> litert, .onnx -> onnxruntime)."""
    from edgekit.runtimes import get_runtime

    return get_runtime(format_for_path(path).default_runtime)


def runtimes_description() -> str:
    """`litert runs .tflite, onnxruntime runs .onnx`: which runtime runs which files, for messages."""
    return ", ".join(f"{runtime} runs {fmt.suffix}" for fmt in FORMATS.values() for runtime in fmt.runtimes)


# ---- what a writer cannot produce ------------------------------------------------------------

def frameworks_of(fmt_name: str) -> tuple[str, ...]:
    """The frameworks whose models can be written as `fmt_name`."""
    return tuple(get_format(fmt_name).writers)


def refusals(framework: str, fmt_name: str, plan: Optional[Plan] = None, options: Any = None) -> list[Refusal]:
    """What the `framework` writer of `fmt_name` refuses of `plan` and `options` (the recipe's
    `export:` section, or anything with `sparse` and `channels_last`), in the order of `choices`;
    empty when it can produce them (or when no such writer exists)."""
    writer = get_format(fmt_name).writers.get(framework)
    return writer.refused(plan, options) if writer is not None else []


def check_plan(framework: str, fmt_name: str, plan: Optional[Plan]) -> None:
    """StageError at export time for a plan the writer refuses (validation refuses it earlier)."""
    get_format(fmt_name).check_plan(framework, plan)
