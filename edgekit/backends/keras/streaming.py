"""What `model.fit` is given: the arrays themselves, or a `tf.data` pipeline for data on disk.

An in-memory split is passed to `fit` as arrays, exactly as before, so results stay bit-identical.
A split that streams from disk (`edgekit.data.ondisk.DiskArray`, an image folder) becomes a
`tf.data.Dataset`, as TensorFlow's input-pipeline guide builds one: the sample indices, shuffled
afresh every epoch from the run's seed, batched, each batch's rows read in one DiskArray call
(`tf.numpy_function`, several batches in parallel) and prefetched while the model trains, so
memory holds a few batches rather than the split.

Under MultiWorkerMirroredStrategy (`distributed.active()`) the pipeline is auto-sharded by DATA,
as Keras shards in-memory arrays: every worker builds the same pipeline with the same seed, so the
same global batches, and keeps its share of each. Each worker therefore reads every row of every
global batch and drops the rows of the others (the price of identical global batches); the steps
and the samples it trains (`train.StepCounter`) are those of in-memory training.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.keras import distributed
from edgekit.backends.keras.compat import tf
from edgekit.data.ondisk import on_disk, pick


class ReadRows:
    """`read(index)`: the float32 rows of the DiskArray `x` at an int64 index batch (one DiskArray
    call) and the labels `y` at the same positions; what each batch's `tf.numpy_function` runs."""

    def __init__(self, x, y):
        self.x, self.y = x, np.asarray(y)

    def __call__(self, index: np.ndarray):
        return np.asarray(self.x[index], dtype=np.float32), self.y[index]


def disk_dataset(x, y, batch_size: int, seed: int = 0, shuffle: bool = True):
    """A `tf.data.Dataset` of batches `(x[index], y[index])` of the DiskArray `x`, every sample once
    per epoch; with `shuffle`, in an order drawn anew every epoch from `seed` (and the global seed
    `keras.utils.set_random_seed` sets), the last batch short as in `fit` on arrays."""
    reader = ReadRows(x, y)
    indices = tf.data.Dataset.range(len(x))
    if shuffle:
        indices = indices.shuffle(max(1, len(x)), seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(max(1, int(batch_size))).map(
        _reading(reader, tuple(x.shape[1:]), reader.y.shape[1:], tf.as_dtype(reader.y.dtype)),
        num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _reading(reader: ReadRows, row_shape: tuple, label_shape: tuple, label_dtype):
    """The dataset's map function: `reader` through `tf.numpy_function`, with the static shapes
    (batch dimension unknown) that numpy_function loses and Keras needs to build the model."""

    def read(index):
        rows, labels = tf.numpy_function(reader, [index], (tf.float32, label_dtype), stateful=False)
        rows.set_shape((None, *row_shape))
        labels.set_shape((None, *label_shape))
        return rows, labels

    return read


def _options():
    """The pipeline's options: auto-shard by DATA on several workers (the shares of each global
    batch; there are no files to shard by), TensorFlow's default in a single process."""
    options = tf.data.Options()
    if distributed.active() is not None:
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def fit_inputs(x, y, x_val, y_val, batch_size: int, seed: int) -> tuple[tuple, dict]:
    """`(args, kwargs)` for `model.fit(*args, **kwargs)`: the train and validation data, batch size
    and shuffling; arrays for in-memory data, `disk_dataset`s for data on disk."""
    (x, y), (x_val, y_val) = whole_shares(x, y, batch_size), whole_shares(x_val, y_val, batch_size)
    if not on_disk(x):
        validation = (x_val, y_val) if len(x_val) else None
        return (x, y), dict(batch_size=batch_size, validation_data=validation, shuffle=True)
    return (disk_dataset(x, y, batch_size, seed),), _validation(x_val, y_val, batch_size)


def whole_shares(x, y, batch_size: int) -> tuple:
    """`(x, y)` without the samples of a last batch too small to give every worker one (under
    MultiWorkerMirroredStrategy a worker with an empty share of a batch fails its step); the same
    arrays in a single process. At most `workers - 1` samples are left out of each epoch."""
    tail = len(x) % batch_size
    if not 0 < tail < distributed.replicas() or len(x) <= tail:
        return x, y
    keep = np.arange(len(x) - tail)
    return pick(x, keep), pick(y, keep)


def _validation(x_val, y_val, batch_size: int) -> dict:
    """`fit`'s validation arguments when training streams: the split in order, from disk too when
    it is there, else the arrays in batches of `batch_size`; none when there is no validation split."""
    if not len(x_val):
        return dict(validation_data=None)
    if on_disk(x_val):
        return dict(validation_data=disk_dataset(x_val, y_val, batch_size, shuffle=False))
    return dict(validation_data=(x_val, y_val), validation_batch_size=batch_size)
