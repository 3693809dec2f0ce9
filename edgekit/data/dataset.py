"""The Dataset handed to every stage: the splits, the calibration samples and what describes them.

Arrays are float32, already preprocessed (`x * scale + offset`) and in the canonical channels-last
layout (NHWC for images; `(n, features)` or `(n, steps, features)` otherwise). Backends whose models
want another layout (torch: NCHW) transpose at their own boundary, so data code never needs to know
which framework will consume it. An image folder's x splits are `DiskArray`s (`ondisk.py`) with the
same shape, dtype and values, read a batch at a time; code that needs a whole split checks
`ondisk.on_disk` and iterates instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_calib: np.ndarray
    task: str = "classification"
    labels: Optional[list[str]] = None
    description: str = ""
    preprocessing: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, without the batch dimension."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """Classification: number of classes (labels, or the largest id + 1). Regression: output width."""
        if self.task == "regression":
            return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])
        seen = int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1
        return max(seen, len(self.labels or []))

    def summary(self) -> dict:
        """Counts and shapes for the report."""
        return {
            "description": self.description,
            "train": int(len(self.x_train)),
            "validation": int(len(self.x_val)),
            "test": int(len(self.x_test)),
            "calibration": int(len(self.x_calib)),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "labels": self.labels,
            "preprocessing": self.preprocessing,
        }

    def fingerprint(self) -> str:
        """A sha256 over every array, for cache keys (a DiskArray contributes its `digest`, which names
        its file, rows and preprocessing, rather than all its bytes)."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test, self.x_calib):
            digest.update(str(array.shape).encode())
            digest.update(array.digest().encode() if hasattr(array, "digest") else np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()
