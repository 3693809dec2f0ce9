"""Input layouts of exported files.

Datasets are channels-last (NHWC). A file exported from torch takes NCHW images unless it was made
channels-last; each Export records its layout, and evaluation and calibration transpose to it.
"""

from __future__ import annotations

import numpy as np

_PERMUTATIONS = {"nhwc": None, "nchw": (0, 3, 1, 2)}


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Channels-last `x` in `layout` (only 4-D image batches are transposed)."""
    permutation = _PERMUTATIONS[layout]
    if permutation is None or x.ndim != 4:
        return x
    return np.ascontiguousarray(np.transpose(x, permutation))
