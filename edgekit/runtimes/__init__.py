"""Deployment runtimes, looked up by name or by file format.

    session = get_runtime("litert").open("model.tflite")
    session = runtime_for_format("onnx").open("model.onnx", threads=2)

Dispatch goes through the two tables below (DESIGN.md: registries, not if-ladders). Importing this
package is cheap: each runtime module imports its library (ai_edge_litert, onnxruntime) only when a
file is opened.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable

from edgekit.errors import InputError
from edgekit.runtimes.base import Runtime, Session, TensorInfo
from edgekit.runtimes.litert import LiteRTRuntime
from edgekit.runtimes.onnxruntime import OnnxRuntime

#: runtime name (as written in `evaluate.runtimes`) -> factory
RUNTIMES: dict[str, Callable[[], Runtime]] = {
    "litert": LiteRTRuntime,
    "onnxruntime": OnnxRuntime,
}

#: file format (export.formats, file suffix without the dot) -> runtime name
FORMAT_RUNTIME: dict[str, str] = {
    "tflite": "litert",
    "onnx": "onnxruntime",
}


def _unknown(kind: str, value: str, known: list[str]) -> InputError:
    close = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return InputError(f"unknown {kind} '{value}' (known: {', '.join(known)}){hint}")


def get_runtime(name: str) -> Runtime:
    """The runtime called `name` ('litert' or 'onnxruntime'); InputError with a hint otherwise."""
    try:
        factory = RUNTIMES[name]
    except KeyError:
        raise _unknown("runtime", str(name), sorted(RUNTIMES)) from None
    return factory()


def runtime_for_format(fmt: str) -> Runtime:
    """The runtime that runs files of format `fmt` ('tflite', 'onnx'; a leading dot is accepted)."""
    key = str(fmt).lower().lstrip(".")
    if key not in FORMAT_RUNTIME:
        raise _unknown("model format", key, sorted(FORMAT_RUNTIME))
    return get_runtime(FORMAT_RUNTIME[key])


def runtime_for_path(path: str | Path) -> Runtime:
    """The runtime for a model file, chosen by its suffix (.tflite -> litert, .onnx -> onnxruntime)."""
    suffix = Path(path).suffix
    if suffix.lower().lstrip(".") not in FORMAT_RUNTIME:
        raise InputError(f"{path}: cannot tell the model format from the suffix '{suffix}' "
                         "(expected .tflite or .onnx)")
    return runtime_for_format(suffix)


__all__ = ["RUNTIMES", "FORMAT_RUNTIME", "Runtime", "Session", "TensorInfo",
           "get_runtime", "runtime_for_format", "runtime_for_path"]
