"""Where torch training runs: the run's compute (device, precision) as the training functions see it.

`edgekit.compute.computing(compute)` sets it for a block (`Backend.computing`); `fit_module` reads `current()`,
moves the model and its companions to the device (`placed`), runs the forward pass and loss under
`autocasting` and steps through `grad_scaler` (loss scaling only for float16).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Iterator

from edgekit.backends.torch.compat import nn, torch
from edgekit.compute import Compute, computing, current

def gpus() -> int:
    """How many GPUs this framework sees."""
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def device_of(model: nn.Module) -> "torch.device":
    """The device of the model's first parameter or buffer (the CPU for a model with neither)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def placed(modules, device: str) -> Iterator[None]:
    """`modules` on `device` within the block and on the CPU after it, also when the block raises,
    so a stage never hands on a model left on a GPU. `Module.to` moves parameters in place: the
    parameter objects an optimizer or a pruning mask holds stay the same."""
    if torch.device(device).type == "cpu":
        yield
        return
    try:
        for module in modules:
            module.to(device)
        yield
    finally:
        for module in modules:
            module.to("cpu")


def autocasting(compute: Compute):
    """The context a forward pass and its loss run in: autocast to the compute's 16-bit float
    under mixed precision (weights stay float32; autocast casts their copies per op), else none."""
    if not compute.mixed:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(compute.device).type, dtype=getattr(torch, compute.compute_dtype))


def grad_scaler(compute: Compute):
    """A `GradScaler` that scales the loss when float16 gradients would underflow, and is a
    pass-through otherwise (float32, and bfloat16, which has float32's range)."""
    return torch.amp.GradScaler(torch.device(compute.device).type, enabled=compute.loss_scaling)
