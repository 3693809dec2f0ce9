"""PyTorch -> .onnx with torch.onnx (dynamo), in float; `edgekit.formats.onnx.export` quantizes it
with ONNX Runtime. The file takes NCHW input named `input` with a dynamic batch dimension."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.backends.torch import conversion
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.train import static_batch
from edgekit.errors import StageError

ONNX_OPSET = 18  # the dynamo exporter's own opset (>= 17, which ONNX Runtime's quantizer needs)
INPUT_NAME = "input"
OUTPUT_NAME = "output"
EXTERNAL_DATA_BYTES = 1 << 30  # weights above this go to `<name>.onnx.data` (protobuf's 2 GB limit)


def _param_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _onnx_export(model: nn.Module, example, path: Path, dynamic: bool) -> None:
    kwargs = {}
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},)
    torch.onnx.export(
        model, (example,), str(path), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=ONNX_OPSET, external_data=_param_bytes(model) > EXTERNAL_DATA_BYTES, **kwargs,
    )


def _onnx_export_script(model, example, path: Path) -> None:
    """TorchScript through torch.onnx's TorchScript exporter, the one that reads ScriptModules."""
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=ONNX_OPSET, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )


def to_onnx(model: nn.Module, path: Path, calibration: Optional[np.ndarray] = None) -> Path:
    """torch.onnx (dynamo) export in float, NCHW input `input` with a dynamic batch, output `output`.

    A model fixed to one batch size (a torch.export teacher without a dynamic batch), or one whose
    graph specialises the batch, is exported with that fixed batch instead. TorchScript goes through
    torch.onnx's TorchScript exporter (dynamic batch), else through its torch.export twin."""
    samples = conversion.samples(model, calibration, False)
    fixed = static_batch(model)
    path = Path(path)
    try:
        with conversion.eval_mode(model), conversion.quiet():
            example = conversion.example(model, samples)
            if conversion.is_script(model):
                try:
                    _onnx_export_script(model, example, path)
                    return path
                except Exception:
                    model = conversion.exportable(model, example)
            elif fixed is None:
                # torch.export specialises a batch of 1, so trace a batch of 2 for a dynamic dimension
                try:
                    _onnx_export(model, torch.from_numpy(next(conversion.batches(samples[:2], 2))), path, dynamic=True)
                    return path
                except Exception:
                    pass  # the graph ties the batch to one size: export that size below
            _onnx_export(model, example, path, dynamic=False)
    except StageError:
        raise
    except Exception as exc:
        raise conversion.failure(f"ONNX export (torch.onnx) of '{type(model).__name__}'", exc) from exc
    return path


def write(artifact, path: Path, calibration: Optional[np.ndarray] = None, sparse: bool = False,
          channels_last: bool = False) -> Path:
    """The torch writer of .onnx files, always float (the plan is applied by ONNX Runtime afterwards);
    `sparse` and `channels_last` concern the .tflite only."""
    return to_onnx(artifact.model, path, calibration)
