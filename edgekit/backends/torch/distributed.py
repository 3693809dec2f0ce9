"""Training torch models on several workers: torch.distributed and DistributedDataParallel.

`join` sets up the process group the way `torchrun` workers do (`init_method="env://"`: MASTER_ADDR,
MASTER_PORT, RANK, WORLD_SIZE, set by torchrun or by `edgekit compress --workers N`), with gloo on
the CPU and NCCL on GPUs. Within it, `train.fit_module` wraps the model in DDP, which starts every
worker from worker 0's weights and averages the gradients of each step, and gives each worker its
share of every global batch (`edgekit.compute.split_batch`).
"""

from __future__ import annotations

import contextlib
import datetime
import warnings
from typing import Iterator

from edgekit.backends.torch.compat import nn, torch
from edgekit.compute import Compute
from edgekit.workers import Group, Worker

#: how long a collective waits for a worker before failing (a dead worker is noticed by the
#: launcher long before: `edgekit.run.launch`)
TIMEOUT = datetime.timedelta(minutes=30)


class TorchGroup(Group):
    """A Group on torch.distributed's object collectives."""

    def broadcast(self, value):
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        values = [None] * self.worker.count
        torch.distributed.all_gather_object(values, value)
        return values

    def lost(self, error: BaseException) -> bool:
        """gloo and NCCL raise a RuntimeError naming themselves when a peer's connection drops."""
        text = str(error)
        return isinstance(error, RuntimeError) and any(mark in text for mark in LOST_MARKS)


#: what the errors of a collective whose peer went away say (gloo's and NCCL's own words)
LOST_MARKS = ("gloo", "NCCL", "Connection reset by peer", "Connection closed by peer")


@contextlib.contextmanager
def join(worker: Worker, compute: Compute) -> Iterator[Group]:
    """Be worker `worker.rank` of the process group for the block (gloo on CPU, nccl on GPU)."""
    if compute.on_gpu:
        torch.cuda.set_device(torch.device(compute.device))
    torch.distributed.init_process_group("nccl" if compute.on_gpu else "gloo", init_method="env://",
                                         rank=worker.rank, world_size=worker.count, timeout=TIMEOUT)
    try:
        yield TorchGroup(worker)
    finally:
        torch.distributed.destroy_process_group()


def place() -> tuple[int, int]:
    """(rank, workers) of this process in the training group; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def wrap(model: nn.Module, device: str) -> nn.Module:
    """`model` (on `device`) under DistributedDataParallel when there are several workers, else
    `model` itself. The wrapper trains `model`'s own parameters; drop it after training."""
    if place()[1] == 1:
        return model
    # a size-1 dimension gives a gradient other strides than its bucket's: harmless, and not the user's to act on
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    devices = [torch.device(device)] if torch.device(device).type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=devices)
