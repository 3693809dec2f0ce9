"""The Backend protocol: what edgekit needs from a training framework.

A backend works on in-memory models of its framework and numpy arrays in the dataset's canonical
channels-last layout. Every method that changes a model returns a new one: the model passed in is
never trained or modified (TF-MOT wrappers share layers, so backends clone first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np

ProgressFactory = Callable[[str, int], Any]  # (description, total) -> context manager yielding advance(n)


class Backend(Protocol):
    framework: str

    def load(self, path: Path) -> Any:
        """Load a model file or directory; raise InputError naming the file when it cannot."""

    def build(self, arch: str, width: float, input_shape: tuple[int, ...], outputs: int, task: str, seed: int) -> Any:
        """A new, untrained zoo model (`edgekit.zoo` names)."""

    def train(self, model: Any, dataset: Any, epochs: int, batch_size: int, learning_rate: float,
              seed: int, progress: Optional[ProgressFactory] = None) -> Any:
        """A trained copy of `model` (the input is not modified)."""

    def predict(self, model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float outputs of the in-framework model."""

    def describe(self, model: Any) -> dict:
        """{"params": int, "input_shape": [...], "output_shape": [...], "layers": int}."""

    def check_compatible(self, model: Any, dataset: Any, task: str) -> None:
        """Raise InputError when the data's sample shape or label range does not fit the model."""

    def export(self, model: Any, fmt: str, path: Path, quantization: Any, calibration: Optional[np.ndarray]) -> Path:
        """Write `model` as `fmt` ("tflite" | "onnx") to `path`, honouring `quantization` where the
        framework's converter applies it (the .tflite), and return the path written."""
