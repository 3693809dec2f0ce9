"""Where and how a run trains: the device, the precision and the number of workers.

The recipe's `compute:` block asks (`device: auto | cpu | cuda | cuda:N`, `precision: float32 |
mixed`); the backend resolves it against what its framework sees (`Backend.resolve_device`)
into a `Compute`, which every training step of the run uses. Exporting and measuring never do:
they always work on the float32 model, on the CPU runtimes.

Mixed precision computes in a 16-bit float and keeps float32 weights: float16 on a GPU (with loss
scaling), bfloat16 on the CPU (the range of float32, so no loss scaling).

With several workers (`compute.workers`, or a group started by torchrun or with TF_CONFIG:
`edgekit.workers`), each global batch is split between them; a `Tally` counts the optimizer
steps and samples this worker trained, so the report shows that every worker really trained.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import asdict, dataclass
from typing import Iterator

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
PRECISIONS = ("float32", "mixed")


@dataclass(frozen=True)
class Compute:
    """The resolved compute of a run: `device` is "cpu" or "cuda:N", never "auto"."""

    device: str = "cpu"
    precision: str = "float32"
    workers: int = 1

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def mixed(self) -> bool:
        return self.precision == "mixed"

    @property
    def compute_dtype(self) -> str:
        """The dtype layers compute in: float32, or the 16-bit float mixed precision uses on this device."""
        if not self.mixed:
            return "float32"
        return "float16" if self.on_gpu else "bfloat16"

    @property
    def loss_scaling(self) -> bool:
        """True when gradients need loss scaling (float16 underflows; bfloat16 has float32's range)."""
        return self.compute_dtype == "float16"

    @property
    def default(self) -> bool:
        """True for float32 on the CPU: what edgekit did before `compute:` existed."""
        return self == CPU

    def describe(self) -> dict:
        """The report's `compute` section."""
        return {**asdict(self), "compute_dtype": self.compute_dtype}


CPU = Compute()

_CURRENT: contextvars.ContextVar[Compute] = contextvars.ContextVar("edgekit_compute", default=CPU)


@contextlib.contextmanager
def computing(compute: Compute) -> Iterator[None]:
    """Train on `compute` within the block: every backend's training functions read it (`current`)."""
    token = _CURRENT.set(compute)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current() -> Compute:
    """The compute training uses now (float32 on the CPU outside `computing`)."""
    return _CURRENT.get()


def requested_gpu(device: str) -> bool:
    return device.startswith("cuda")


def gpu_index(device: str) -> int:
    """The N of "cuda:N" ("cuda" is device 0)."""
    return int(device.split(":", 1)[1]) if ":" in device else 0


def cache_key(config, workers: int = 1) -> list:
    """What the stage cache's keys of trained steps add for a recipe's `compute:` block trained on
    `workers` processes: nothing for float32 on the CPU or wherever `auto` lands, in one process
    (so keys made before `compute:` existed stay valid), else the block, since mixed precision, a
    named GPU and a split batch train different weights."""
    if config.precision == "float32" and not requested_gpu(config.device) and workers == 1:
        return []
    key = {"device": config.device, "precision": config.precision}
    return [{**key, "workers": workers} if workers > 1 else key]


@dataclass
class Tally:
    """What this worker trained within one step of a run: optimizer steps, samples, and the batch
    sizes (the global batch, split between the workers, and this worker's share of it)."""

    steps: int = 0
    samples: int = 0
    global_batch: int = 0
    worker_batch: int = 0

    def add(self, steps: int, samples: int, global_batch: int, worker_batch: int) -> None:
        """Count one training loop (a backend's fit); the batch sizes are those of the last loop."""
        self.steps += int(steps)
        self.samples += int(samples)
        self.global_batch, self.worker_batch = int(global_batch), int(worker_batch)

    def as_dict(self) -> dict:
        return {"steps": self.steps, "samples": self.samples, "global_batch": self.global_batch,
                "worker_batch": self.worker_batch}


_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("edgekit_tally", default=None)


@contextlib.contextmanager
def counting() -> Iterator[Tally]:
    """A fresh Tally that the training loops run within the block add to."""
    tally = Tally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


def count(steps: int, samples: int, global_batch: int, worker_batch: int) -> None:
    """Add a finished training loop to the current Tally (nothing outside `counting`)."""
    tally = _TALLY.get()
    if tally is not None:
        tally.add(steps, samples, global_batch, worker_batch)


def split_batch(indices: list, rank: int, workers: int) -> list:
    """Worker `rank`'s share of a global batch: every `workers`-th sample from its `rank`-th, so
    the shares are disjoint, together make the batch, and differ in size by at most one."""
    return indices[rank::workers]
