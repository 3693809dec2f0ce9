"""Seeded index splits: validation hold-out, calibration sets and the test-set cap.

Every function here takes labels or sizes and a seed and returns indices (or arrays picked by
them), so the same recipe seed always selects the same samples, on any machine, whether the
arrays are in memory or on disk (a `DiskArray` split is a view, `ondisk.pick`):

    >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    >>> keep, held = split_indices(y, 0.2, rng(0, "validation"), stratify=True)
    >>> sorted(y[held].tolist())
    [0, 1]

Splits are written here rather than with scikit-learn's `train_test_split(stratify=...)` because
that refuses small sets (fewer held-out samples than classes), which tiny recipes hit; here a
stratified split always succeeds when every class has two samples, else falls back to a plain
seeded shuffle. Kept and held-out indices come back sorted, so the arrays keep their file order.
"""

from __future__ import annotations

import math
import zlib
from typing import Optional

import numpy as np

from edgekit.errors import InputError
from edgekit.data.ondisk import pick


def rng(seed: int, stream: str) -> np.random.Generator:
    """An independent generator per purpose ("validation", "calibration", ...) for one seed."""
    return np.random.default_rng([seed % 2**64, zlib.crc32(stream.encode())])


def split_indices(
    y: Optional[np.ndarray], fraction: float, generator: np.random.Generator, stratify: bool, n: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) indices; `ceil(fraction * n)` samples are held out.

    With `stratify` (classification labels in `y`), each class gives its share, rounded by largest
    remainder, and keeps at least one sample when it can; that needs every class to have two
    samples, else the split is a plain seeded shuffle.
    """
    n = len(y) if n is None else n
    n_held = math.ceil(fraction * n) if fraction > 0 else 0
    if n_held == 0:
        return np.arange(n), np.arange(0)
    n_held = min(n_held, n)
    if stratify and y is not None and _every_class_has_two(y):
        held = _stratified(y, n_held, generator)
    else:
        held = generator.permutation(n)[:n_held]
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _every_class_has_two(y: np.ndarray) -> bool:
    _, counts = np.unique(y, return_counts=True)
    return bool(len(counts)) and int(counts.min()) >= 2


def _stratified(y: np.ndarray, n_held: int, generator: np.random.Generator) -> np.ndarray:
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    exact = counts * n_held / len(y)
    quota = np.floor(exact).astype(np.int64)
    # Hand out the remaining samples by largest fractional part, ties broken by the seed; a class
    # first keeps one sample in the kept split, and gives it up only when nothing else is left.
    order = generator.permutation(len(classes))
    order = order[np.argsort(-(exact - quota)[order], kind="stable")]
    left = n_held - int(quota.sum())
    for cap in (counts - 1, counts):
        for c in order:
            if left == 0:
                break
            if quota[c] < cap[c]:
                quota[c] += 1
                left -= 1
    held = [generator.permutation(np.flatnonzero(inverse == c))[: quota[c]] for c in range(len(classes))]
    return np.concatenate(held)


def hold_out_validation(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, classification: bool, where: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): `fraction` of the train split held out for validation."""
    keep, held = split_indices(y, fraction, rng(seed, "validation"), stratify=classification)
    if len(keep) == 0:
        raise InputError(
            f"{where}: data.validation_split {fraction} holds out all {len(x)} train samples, leaving none to train "
            "on. Lower data.validation_split (e.g. 0.1) or provide more train samples."
        )
    return pick(x, keep), y[keep], pick(x, held), y[held]


def calibration_set(x_train: np.ndarray, count: int, seed: int, where: str, held_out: int = 0) -> np.ndarray:
    """`count` train samples picked by a seeded permutation, for int8 calibration: always an
    in-memory array (read from disk when `x_train` is a DiskArray; the sample is small)."""
    available = len(x_train)
    if count > available:
        after = f" after the validation split held out {held_out}" if held_out else ""
        raise InputError(
            f"{where}: data.calibration_samples is {count} but only {available} train samples are available{after}. "
            f"Set data.calibration_samples: {available} (or fewer), or provide more train samples."
        )
    picked = rng(seed, "calibration").permutation(available)[:count]
    return np.asarray(pick(x_train, np.sort(picked)))


def cap_test(x: np.ndarray, y: np.ndarray, cap: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
    """At most `cap` test samples: the first `cap` of a permutation seeded with 0 (the same for every
    recipe seed, so runs with different seeds are measured on the same samples); None keeps all."""
    if cap is None or cap >= len(x):
        return x, y
    picked = np.sort(np.random.default_rng(0).permutation(len(x))[:cap])
    return pick(x, picked), y[picked]
