"""Deployment runtimes, looked up by name.

    session = get_runtime("litert").open("model.tflite", threads=2)

Dispatch goes through the table below (DESIGN.md: registries, not if-ladders); which runtimes run
which file format is the format registry's to say (`edgekit.formats.registry.runtime_for_path`).
Importing this package is cheap: each runtime module imports its library (ai_edge_litert,
tflite_micro, onnxruntime, executorch) only when a file is opened.
"""

from __future__ import annotations

import difflib
from typing import Callable

from edgekit.errors import InputError
from edgekit.runtimes.base import Runtime, Session, TensorInfo
from edgekit.runtimes.executorch import ExecuTorchRuntime
from edgekit.runtimes.litert import LiteRTRuntime
from edgekit.runtimes.onnxruntime import OnnxRuntime
from edgekit.runtimes.tflm import TFLMRuntime

#: runtime name (as written in `evaluate.runtimes`) -> factory
RUNTIMES: dict[str, Callable[[], Runtime]] = {
    "litert": LiteRTRuntime,
    "tflm": TFLMRuntime,
    "onnxruntime": OnnxRuntime,
    "executorch": ExecuTorchRuntime,
}


def _unknown(kind: str, value: str, known: list[str]) -> InputError:
    close = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return InputError(f"unknown {kind} '{value}' (known: {', '.join(known)}){hint}")


def get_runtime(name: str) -> Runtime:
    """The runtime called `name` ('litert', 'tflm', 'onnxruntime', 'executorch'); InputError with a hint otherwise."""
    try:
        factory = RUNTIMES[name]
    except KeyError:
        raise _unknown("runtime", str(name), sorted(RUNTIMES)) from None
    return factory()


__all__ = ["RUNTIMES", "Runtime", "Session", "TensorInfo", "get_runtime"]
