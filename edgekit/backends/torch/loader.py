"""The batches torch training reads: an epoch's index batches, and a `DataLoader` for data on disk.

`epoch_batches` is the one definition of an epoch's batches (a seeded `torch.randperm` order, the
tail rules, this worker's `split_batch` share); `train.fit_module` indexes in-memory samples with
them directly, and reads samples on disk (a DiskArray) through `batch_loader`: a
`torch.utils.data.DataLoader` whose batch sampler yields exactly those batches and whose loader
processes each read a batch's rows in one DiskArray call, ahead of the training step. Same batches,
same order, so the same weights as reading each batch in the training process.

Loader processes start with the "forkserver" method (or "spawn" where there is none): forking a
process that has loaded torch and TensorFlow (their thread pools, locks and OpenMP state) is not
safe. Loader processes start once per `fit_module` (`persistent_workers`): the first time in a
process about a second (the fork server imports torch), then tens of milliseconds. They import
this module and the main script as `__mp_main__`, so a script that trains through edgekit keeps
its work under `if __name__ == "__main__":` (the `edgekit` command does). The DiskArray pickles
without its open file, so each process opens its own.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Iterator, Optional

import numpy as np

from edgekit.backends.torch.compat import torch
from edgekit.backends.torch.layout import to_nchw
from edgekit.compute import split_batch

#: environment variable overriding how many loader processes read data on disk (0: read in-process)
WORKERS_ENV = "EDGEKIT_LOADER_WORKERS"
#: batches each loader process reads ahead (DataLoader's `prefetch_factor`)
PREFETCH = 2


def epoch_order(n: int, batch_size: int, generator, workers: int, full_batches_only: bool):
    """This epoch's order of the `n` samples: a `torch.randperm` drawn from `generator`, less the
    tail that cannot train: all of it when only full batches run (an exported program with a fixed
    batch size), or a tail too short to give each worker 2 samples (BatchNorm needs them)."""
    return torch.randperm(n, generator=generator)[:trained_samples(n, batch_size, workers, full_batches_only)]


def trained_samples(n: int, batch_size: int, workers: int, full_batches_only: bool) -> int:
    """How many of the `n` samples an epoch trains on: less the last batch's tail when only full
    batches run, or when it is too short to give each worker 2 samples (BatchNorm needs them)."""
    tail = n % batch_size
    if full_batches_only or (n > tail and 0 < tail < 2 * workers):
        return n - tail
    return n


def epoch_batches(n: int, batch_size: int, generator, rank: int, workers: int,
                  full_batches_only: bool) -> Iterator:
    """This worker's index tensor of each global batch of one epoch (`epoch_order`, then
    `split_batch`); draws the epoch's permutation from `generator` when iteration starts."""
    order = epoch_order(n, batch_size, generator, workers, full_batches_only)
    for start in range(0, len(order), batch_size):
        yield split_batch(order[start:start + batch_size], rank, workers)


class EpochBatches(torch.utils.data.Sampler):
    """A batch sampler over `epoch_batches`: every `iter` is the next epoch, drawn from the same
    generator, so a DataLoader over it yields the batches `fit_module` indexes in memory."""

    def __init__(self, n: int, batch_size: int, generator, rank: int, workers: int, full_batches_only: bool):
        super().__init__()
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.rank, self.workers, self.full_batches_only = rank, workers, full_batches_only

    def epoch(self) -> Iterator:
        """The next epoch's batches as index tensors (what in-memory training indexes with)."""
        return epoch_batches(self.n, self.batch_size, self.generator, self.rank, self.workers,
                             self.full_batches_only)

    def __iter__(self):
        for index in self.epoch():
            yield index.tolist()

    def __len__(self) -> int:
        return -(-trained_samples(self.n, self.batch_size, self.workers, self.full_batches_only) // self.batch_size)


class Positions(torch.utils.data.Dataset):
    """The map-style dataset of a DiskArray's positions: an item is its index, read later by
    `ReadRows` a whole batch at a time (one DiskArray call) rather than a row at a time."""

    def __init__(self, x):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, position: int) -> int:
        return int(position)


class ReadRows:
    """The DataLoader's collate: a batch's positions -> `(x, index)`, the NCHW float32 rows read in
    one DiskArray call and the positions as an int64 tensor (the labels are indexed with them)."""

    def __init__(self, x):
        self.x = x

    def __call__(self, positions: list):
        index = np.asarray(positions, dtype=np.int64)
        rows = torch.from_numpy(to_nchw(np.asarray(self.x[index], dtype=np.float32)))
        return rows, torch.from_numpy(index)


def default_workers(training_workers: int = 1) -> int:
    """Loader processes per training worker: `EDGEKIT_LOADER_WORKERS` when set, else up to 2,
    leaving one core of this worker's share of the machine to the training step itself."""
    if os.environ.get(WORKERS_ENV, "").strip():
        return max(0, int(os.environ[WORKERS_ENV]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(2, cores // max(1, training_workers) - 1))


def start_method() -> str:
    """"forkserver" where the platform has it, else "spawn": never "fork" (see the module docstring)."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def context():
    """The multiprocessing context loader processes start in (`start_method`). The fork server
    preloads this module (torch) once, so loader processes fork from it ready in tens of ms, where
    each would otherwise import torch itself (about a second)."""
    method = start_method()
    chosen = multiprocessing.get_context(method)
    if method == "forkserver":
        chosen.set_forkserver_preload([__name__])
    return chosen


def batch_loader(x, sampler: EpochBatches, workers: Optional[int] = None):
    """A DataLoader yielding `(rows, index)` for every batch of `sampler`, read from the DiskArray
    `x` by `workers` loader processes (`default_workers` when None; 0 reads in this process).

    It has its own generator for the seed it draws per iteration, so torch's global random state
    (dropout, augmentation) advances exactly as without a loader."""
    workers = default_workers() if workers is None else int(workers)
    options = dict(num_workers=workers, collate_fn=ReadRows(x), generator=torch.Generator().manual_seed(0))
    if workers > 0:
        options.update(persistent_workers=True, prefetch_factor=PREFETCH,
                       multiprocessing_context=context())
    return torch.utils.data.DataLoader(Positions(x), batch_sampler=sampler, **options)
