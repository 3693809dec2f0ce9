"""Input layouts of exported files.

Datasets are channels-last (NHWC). A file exported from torch takes NCHW images unless it was made
channels-last; each Export records its layout, and evaluation and calibration transpose to it.
"""

from __future__ import annotations

import numpy as np

_PERMUTATIONS = {"nhwc": None, "nchw": (0, 3, 1, 2)}


def to_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """Channels-last `x` in `layout` (only 4-D image batches are transposed).

    An array that streams from disk (`edgekit.data.ondisk.DiskArray`, recognised by its `map`) is
    not read: it comes back with the transpose as a lazy per-batch transform."""
    permutation = _PERMUTATIONS[layout]
    if permutation is None or x.ndim != 4:
        return x
    if hasattr(x, "map") and not isinstance(x, np.ndarray):
        return x.map(_Transposed(permutation))
    return np.ascontiguousarray(np.transpose(x, permutation))


class _Transposed:
    """A batch transposed by `permutation`, C-contiguous (a DiskArray transform; `label` names it in digests)."""

    def __init__(self, permutation: tuple[int, ...]):
        self.permutation = permutation
        self.label = f"transposed{permutation}"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(batch, self.permutation))
