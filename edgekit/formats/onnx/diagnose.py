"""Per-layer quantization error of an .onnx, with ONNX Runtime's own debugging tools.

`onnxruntime.quantization.qdq_loss_debug` runs the float model and its QDQ model with every
intermediate tensor as an output (`modify_model_output_intermediate_tensors`, `collect_activations`),
matches each quantized activation to its float twin (`create_activation_matching`) and gives the
signal-to-quantization-noise ratio of each (`compute_activation_error`: `xmodel_err`, in dB, float
model against QDQ model). The QDQ model is the plan's as ONNX Runtime quantizes it (the first,
uint8-activation variant of `tuning.candidates()`, with the plan's per-layer precisions), without
`compact`, which would rename the tensors the matching relies on.

The float activations also give each layer's range statistics: the largest |value| over its 99.9th
percentile (one outlier value), and the largest per-channel range over the median channel's (one
outlier channel: what cross-layer equalization fixes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edgekit.formats.layer_names import layer_of
from edgekit.formats.onnx.tuning import INT16X8, Calibration, candidates, input_name, prepare, quantize
from edgekit.precision import Int16x8
from edgekit.quiet import native_stderr_silenced

WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
TOOL = "onnxruntime.quantization.qdq_loss_debug"


def _layer_tensors(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """({output of a weight op: its layer}, {output of any node: its layer}) in the model at `path`."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    outputs = {out: layer_of(node.name) for node in graph.node for out in node.output if layer_of(node.name)}
    weight_ops = {node.output[0]: outputs[node.output[0]] for node in graph.node
                  if node.op_type in WEIGHT_OPS and node.output and node.output[0] in outputs}
    return weight_ops, outputs


def ranges(values: list[np.ndarray]) -> dict:
    """Range statistics of one activation over the samples (channels on axis 1)."""
    stacked = np.concatenate([np.asarray(v, np.float32) for v in values])
    magnitude = np.abs(stacked)
    top, typical = float(magnitude.max()), float(np.percentile(magnitude, 99.9))
    per_channel = magnitude.max(axis=tuple(i for i in range(stacked.ndim) if i != 1)) if stacked.ndim > 1 else magnitude
    median = float(np.median(per_channel))
    return {"max_abs": top, "range_ratio": round(top / typical, 3) if typical > 0 else None,
            "channel_ratio": round(float(per_channel.max()) / median, 3) if median > 0 else None}


def diagnose(float_path: Path, plan, samples: np.ndarray) -> tuple[str, dict[str, dict]]:
    """(the tool, {layer: {"snr_db", "max_abs", "range_ratio", "channel_ratio"}}) of the float .onnx
    at `float_path` quantized as `plan` says, on `samples` (in the file's layout)."""
    from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                         create_activation_matching,
                                                         modify_model_output_intermediate_tensors)

    with tempfile.TemporaryDirectory(prefix="edgekit-diagnose-") as tmp, native_stderr_silenced():
        tmp = Path(tmp)
        prepared, qdq = tmp / "prepared.onnx", tmp / "qdq.onnx"
        prepare(float_path, prepared)
        name = input_name(prepared)
        candidate = INT16X8 if isinstance(plan, Int16x8) else candidates()[0]
        quantize(prepared, qdq, candidate, plan, name, samples)
        float_outputs, qdq_outputs = tmp / "float.aug.onnx", tmp / "qdq.aug.onnx"
        modify_model_output_intermediate_tensors(str(prepared), str(float_outputs))
        modify_model_output_intermediate_tensors(str(qdq), str(qdq_outputs))
        float_acts = collect_activations(str(float_outputs), Calibration(name, samples))
        qdq_acts = collect_activations(str(qdq_outputs), Calibration(name, samples))
        errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
        weight_ops, outputs = _layer_tensors(prepared)
    found: dict[str, dict] = {}
    for tensor, layer in weight_ops.items():
        if tensor in float_acts:
            found.setdefault(layer, {}).update(ranges(float_acts[tensor]))
    for tensor, layer in outputs.items():  # a layer's lowest SNR among the tensors it writes
        snr = (errors.get(tensor) or {}).get("xmodel_err")
        if snr is not None and np.isfinite(snr):
            entry = found.setdefault(layer, {})
            entry["snr_db"] = round(min(float(snr), entry.get("snr_db", float("inf"))), 2)
    return TOOL, found
