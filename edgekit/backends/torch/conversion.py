"""What both torch writers (.tflite through LiteRT-Torch, .onnx through torch.onnx) need from a model:
example input and calibration samples in the model's layout, eval mode, quiet converters.

`calibration` holds channels-last (NHWC) float samples; the first one is the example input that
fixes the shapes of what is traced.
"""

from __future__ import annotations

import contextlib
import io
from typing import Iterator, Optional

import numpy as np

from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.layout import to_nchw
from edgekit.backends.torch.train import set_mode, static_batch
from edgekit.errors import StageError
from edgekit.quiet import debugging, native_stderr_silenced, quiet_python_loggers


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence LiteRT-Torch's progress lines (stdout), torch.onnx's status lines and native logs."""
    if debugging():
        yield
        return
    with native_stderr_silenced(), contextlib.redirect_stdout(io.StringIO()):
        try:
            yield
        finally:
            quiet_python_loggers()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the conversion; the caller's module gets its own mode back afterwards."""
    was_training = bool(getattr(model, "training", False))
    set_mode(model, False)
    try:
        yield
    finally:
        if was_training:
            set_mode(model, True)


def failure(what: str, exc: Exception) -> StageError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return StageError("export", f"{what} failed: {text[:600]}")


def _placeholder_shape(model: nn.Module) -> Optional[tuple[int, ...]]:
    """The first input's static shape recorded in a torch.export / PT2E graph, if any."""
    graph = getattr(model, "graph", None)
    for node in getattr(graph, "nodes", ()):
        if node.op == "placeholder":
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is not None and all(isinstance(d, int) for d in shape):
                return tuple(int(d) for d in shape)
            return None
    return None


def samples(model: nn.Module, calibration: Optional[np.ndarray], channels_last: bool) -> np.ndarray:
    """Model-layout float32 samples: NCHW for torch, or NHWC as given when `channels_last`."""
    if calibration is None or not len(calibration):
        shape = _placeholder_shape(model)
        if shape is None:
            raise StageError("export", f"exporting '{type(model).__name__}' needs an example input (the "
                                       "calibration samples) to trace the model with, and none was given")
        x = np.zeros((1,) + shape[1:], np.float32)
        return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))) if channels_last and x.ndim == 4 else x
    x = np.asarray(calibration, dtype=np.float32)
    return np.ascontiguousarray(x) if channels_last and x.ndim == 4 else to_nchw(x)


def batches(samples: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """`samples` in batches of exactly `batch` (a short last batch is filled with its own samples)."""
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        if len(chunk) < batch:
            chunk = np.resize(chunk, (batch,) + chunk.shape[1:])
        yield np.ascontiguousarray(chunk)


def example(model: nn.Module, samples: np.ndarray) -> "torch.Tensor":
    """The first sample (or the first batch a fixed-batch model needs) as a tensor."""
    batch = static_batch(model) or 1
    return torch.from_numpy(next(batches(samples[:batch], batch)))


def is_script(model) -> bool:
    return isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction))


def exportable(model: nn.Module, example) -> nn.Module:
    """`model`, or for TorchScript (which torch.export cannot trace) its torch.export twin, traced
    with `example` (so fixed to its batch size)."""
    if not is_script(model):
        return model
    from torch._export.converter import TS2EPConverter

    module = TS2EPConverter(model, (example,)).convert().module()
    set_mode(module, False)
    return module
