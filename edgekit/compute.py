"""Where and how a run trains: the device and the precision.

The recipe's `compute:` block asks (`device: auto | cpu | cuda | cuda:N`, `precision: float32 |
mixed`); the backend resolves it against what its framework sees (`Backend.resolve_device`)
into a `Compute`, which every training step of the run uses. Exporting and measuring never do:
they always work on the float32 model, on the CPU runtimes.

Mixed precision computes in a 16-bit float and keeps float32 weights: float16 on a GPU (with loss
scaling), bfloat16 on the CPU (the range of float32, so no loss scaling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
PRECISIONS = ("float32", "mixed")


@dataclass(frozen=True)
class Compute:
    """The resolved compute of a run: `device` is "cpu" or "cuda:N", never "auto"."""

    device: str = "cpu"
    precision: str = "float32"

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


def requested_gpu(device: str) -> bool:
    return device.startswith("cuda")


def gpu_index(device: str) -> int:
    """The N of "cuda:N" ("cuda" is device 0)."""
    return int(device.split(":", 1)[1]) if ":" in device else 0


def cache_key(config) -> list:
    """What the stage cache's keys of trained steps add for a recipe's `compute:` block: nothing
    for float32 on the CPU or wherever `auto` lands (so keys made before `compute:` existed stay
    valid), else the block, since mixed precision and a named GPU train different weights."""
    if config.precision == "float32" and not requested_gpu(config.device):
        return []
    return [{"device": config.device, "precision": config.precision}]
