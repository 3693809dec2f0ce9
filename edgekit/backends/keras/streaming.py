"""What `model.fit` is given: the arrays themselves, or a `DiskBatches` sequence for data on disk.

An in-memory split is passed to `fit` as arrays, exactly as before, so results stay bit-identical.
A split that streams from disk (`edgekit.data.ondisk.DiskArray`, an image folder) becomes a
`keras.utils.Sequence` of shuffled batches read as training asks for them, so memory holds a batch
or two rather than the split.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.keras.compat import keras
from edgekit.data.ondisk import on_disk


class DiskBatches(keras.utils.Sequence):
    """Batches `(x[index], y[index])` of a DiskArray `x`; with `shuffle`, the order is a seeded
    permutation drawn afresh after every epoch (and the last batch may be short, as in `fit`)."""

    def __init__(self, x, y, batch_size: int, seed: int = 0, shuffle: bool = True):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle = x, np.asarray(y), max(1, int(batch_size)), shuffle
        self._generator = np.random.default_rng(seed)
        self._order = self._draw()

    def _draw(self) -> np.ndarray:
        return self._generator.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, batch: int):
        index = self._order[batch * self.batch_size:(batch + 1) * self.batch_size]
        return np.asarray(self.x[index], dtype=np.float32), self.y[index]

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._draw()


def fit_inputs(x, y, x_val, y_val, batch_size: int, seed: int) -> tuple[tuple, dict]:
    """`(args, kwargs)` for `model.fit(*args, **kwargs)`: the train and validation data, batch size
    and shuffling; arrays for in-memory data, `DiskBatches` for data on disk."""
    if not on_disk(x):
        validation = (x_val, y_val) if len(x_val) else None
        return (x, y), dict(batch_size=batch_size, validation_data=validation, shuffle=True)
    validation = DiskBatches(x_val, y_val, batch_size, shuffle=False) if len(x_val) else None
    return (DiskBatches(x, y, batch_size, seed),), dict(validation_data=validation, shuffle=False)
