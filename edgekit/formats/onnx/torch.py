"""PyTorch -> .onnx with torch.onnx (dynamo), in float; `edgekit.formats.onnx.export` quantizes it
with ONNX Runtime. The file takes NCHW input named `input` with a dynamic batch dimension."""

from __future__ import annotations

import ast
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
STACK_TRACE = "pkg.torch.onnx.stack_trace"  # node metadata torch.onnx adds: Python frames with file paths
NAME_SCOPES = "pkg.torch.onnx.name_scopes"  # ... and the module scopes of the node


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


def _module_path(node) -> str | None:
    """The path of the module that made `node` (`features.0`), from the name scopes torch.onnx
    records (`['', 'features', 'features.0', 'conv2d']`: the module scopes, then the op)."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return scopes[-2] if isinstance(scopes, list) and len(scopes) >= 3 and scopes[-2] else None
    return None


def _tidy_nodes(path: Path) -> None:
    """Name every node after its module and drop the stack traces torch.onnx records.

    The dynamo exporter names nodes by op (`node_conv2d_1`) and keeps the module in metadata that
    quantization and `compact` drop; prefixed with the module path (`features.3/node_conv2d_1`),
    the layer stays readable in every file, which `keep_float` / `overrides`, `edgekit inspect`
    and the per-layer reports need. The stack traces carry the absolute paths of the files involved
    (the virtualenv, the user's checkout): a shipped file must not carry them, and without them the
    same model gives the same bytes wherever it is exported."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    for graph in [model.graph, *model.functions]:
        for node in graph.node:
            module = _module_path(node)
            if module and not node.name.startswith(f"{module}/"):
                node.name = f"{module}/{node.name}"
            kept = [prop for prop in node.metadata_props if prop.key != STACK_TRACE]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
    onnx.save(model, str(path))


def _export(model: nn.Module, samples: np.ndarray, path: Path) -> None:
    """TorchScript through the TorchScript exporter (dynamic batch), else through torch.export: a
    dynamic batch when the graph allows it, else the one batch size the model is fixed to."""
    example = conversion.example(model, samples)
    if conversion.is_script(model):
        try:
            _onnx_export_script(model, example, path)
            return
        except Exception:
            model = conversion.exportable(model, example)
    elif static_batch(model) is None:
        # torch.export specialises a batch of 1, so trace a batch of 2 for a dynamic dimension
        try:
            _onnx_export(model, torch.from_numpy(next(conversion.batches(samples[:2], 2))), path, dynamic=True)
            return
        except Exception:
            pass  # the graph ties the batch to one size: export that size below
    _onnx_export(model, example, path, dynamic=False)


def to_onnx(model: nn.Module, path: Path, calibration: Optional[np.ndarray] = None) -> Path:
    """torch.onnx (dynamo) export in float, NCHW input `input` with a dynamic batch, output `output`.

    A model fixed to one batch size (a torch.export teacher without a dynamic batch), or one whose
    graph specialises the batch, is exported with that fixed batch instead. The stack traces
    torch.onnx records on the nodes are dropped, and nodes are named after their modules (`_tidy_nodes`)."""
    samples = conversion.samples(model, calibration, False)
    path = Path(path)
    try:
        with conversion.eval_mode(model), conversion.quiet():
            _export(model, samples, path)
        _tidy_nodes(path)
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
