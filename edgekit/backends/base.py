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


def check_labels_fit(dataset: Any, outputs: Optional[int], task: str, where: str) -> None:
    """Raise InputError when a class id in the data has no output of the model."""
    from edgekit.errors import InputError

    if task != "classification" or outputs is None:
        return
    largest = int(max(dataset.y_train.max(initial=0), dataset.y_test.max(initial=0)))
    if largest >= outputs:
        raise InputError(f"{where}: the data has class id {largest} but the model has only {outputs} outputs "
                         f"(classes 0..{outputs - 1}). Check data.keys.y_train / y_test or the model.")


class TrainModuleBackend:
    """Training, copying and prediction through the backend's own `train` module (`_train`), so
    each backend only says how its framework does them."""

    _train: Any

    def train(self, model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train"):
        return self._train.fit(model, dataset, epochs, batch_size, learning_rate, seed, progress, description)

    def clone(self, model):
        return self._train.clone(model)

    def predict(self, model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self._train.predict(model, x, batch_size)
