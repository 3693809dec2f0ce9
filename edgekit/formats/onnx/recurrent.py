"""Recurrent ops in an int8 .onnx: ONNX Runtime's static (QDQ) quantizer has no LSTM, so it leaves an
LSTM's W / R / B in float32 (a torch nn.LSTM int8 file was 0.92x its float bytes). ORT's dynamic
quantizer does have one: it rewrites LSTM to com.microsoft DynamicQuantizeLSTM with int8 W and R,
activations quantized at run time. So after static quantization the LSTMs alone are quantized
dynamically, in the same file. GRU and RNN have no integer kernel in ORT: their W and R are stored in
int8 (symmetric, per output row) and dequantized by a DequantizeLinear in front of the op, which
ORT runs at every inference (it does not fold DequantizeLinear), so the file is about 4x smaller but
the op still computes in float, slightly slower than the float file; the record says so.
"""

from __future__ import annotations

from pathlib import Path

#: recurrent ops ONNX Runtime's dynamic quantizer rewrites to an integer kernel
DYNAMIC_RECURRENT = ("LSTM",)
RECURRENT = ("LSTM", "GRU", "RNN")
WEIGHT_INPUTS = (1, 2)  # W and R of LSTM / GRU / RNN: [directions, gates x hidden, input or hidden]


def recurrent_ops(path: Path) -> dict[str, int]:
    """Recurrent op type -> count in the main graph of the file at `path`."""
    import onnx

    found: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in RECURRENT and node.domain in ("", "ai.onnx"):
            found[node.op_type] = found.get(node.op_type, 0) + 1
    return found


def quantize_recurrent(path: Path) -> None:
    """Give the recurrent ops of the (statically quantized) file at `path` int8 weights, in place:
    LSTMs become DynamicQuantizeLSTM, GRU / RNN weights are stored in int8 (`_store_int8`)."""
    import shutil
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    found = recurrent_ops(path)
    if any(op in DYNAMIC_RECURRENT for op in found):
        with tempfile.TemporaryDirectory(prefix="edgekit-lstm-") as tmp:
            out = Path(tmp) / "recurrent.onnx"
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8,
                             op_types_to_quantize=list(DYNAMIC_RECURRENT))
            shutil.copyfile(out, path)
    if any(op not in DYNAMIC_RECURRENT for op in found):
        _store_int8(path)


def _store_int8(path: Path) -> None:
    """Replace each constant float W / R of a GRU or RNN by int8 + DequantizeLinear (scale per row of
    axis 1, zero point 0), in place."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    users = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    added = []
    for node in graph.node:
        if node.op_type in DYNAMIC_RECURRENT or node.op_type not in RECURRENT:
            continue
        for i in WEIGHT_INPUTS:
            name = node.input[i] if i < len(node.input) else ""
            tensor = initializers.get(name)
            if tensor is None or tensor.data_type != onnx.TensorProto.FLOAT or users.get(name) != 1:
                continue
            weights = numpy_helper.to_array(tensor)
            scale = np.abs(weights).max(axis=(0, 2)) / 127.0
            scale[scale == 0] = 1.0
            stored = np.clip(np.round(weights / scale[None, :, None]), -127, 127).astype(np.int8)
            graph.initializer.remove(tensor)
            graph.initializer.extend([numpy_helper.from_array(stored, f"{name}_quantized"),
                                      numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
                                      numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{name}_zero_point")])
            added.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale",
                                          f"{name}_zero_point"], [name], name=f"{name}_DequantizeLinear", axis=1))
    for node in reversed(added):  # before every node, so the graph stays topologically sorted
        graph.node.insert(0, node)
    onnx.save(model, str(path))


def note(found: dict[str, int]) -> str | None:
    """What happened to the recurrent ops, for the record (None when the model has none)."""
    if not found:
        return None
    parts = []
    dynamic = {op: n for op, n in found.items() if op in DYNAMIC_RECURRENT}
    left = {op: n for op, n in found.items() if op not in DYNAMIC_RECURRENT}
    if dynamic:
        parts.append(", ".join(f"{n} {op}" for op, n in dynamic.items())
                     + ": int8 weights, activations quantized at run time (DynamicQuantizeLSTM)")
    if left:
        parts.append(", ".join(f"{n} {op}" for op, n in left.items())
                     + ": int8 weights dequantized at every run, computed in float (ONNX Runtime has no "
                       "integer kernel for it, so it is no faster than float)")
    return "; ".join(parts)
