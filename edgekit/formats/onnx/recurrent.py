"""Recurrent ops in an int8 .onnx: ONNX Runtime's static (QDQ) quantizer has no LSTM, so it leaves an
LSTM's W / R / B in float32 (a torch nn.LSTM int8 file was 0.92x its float bytes). ORT's dynamic
quantizer does have one: it rewrites LSTM to com.microsoft DynamicQuantizeLSTM with int8 W and R,
activations quantized at run time. So after static quantization the LSTMs alone are quantized
dynamically, in the same file. GRU and RNN have no integer kernel in ORT and stay float; the record
names them.
"""

from __future__ import annotations

from pathlib import Path

#: recurrent ops ONNX Runtime's dynamic quantizer rewrites to an integer kernel
DYNAMIC_RECURRENT = ("LSTM",)
RECURRENT = ("LSTM", "GRU", "RNN")


def recurrent_ops(path: Path) -> dict[str, int]:
    """Recurrent op type -> count in the main graph of the file at `path`."""
    import onnx

    found: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in RECURRENT and node.domain in ("", "ai.onnx"):
            found[node.op_type] = found.get(node.op_type, 0) + 1
    return found


def quantize_recurrent(path: Path) -> None:
    """Rewrite the LSTMs of the (statically quantized) file at `path`, in place, to DynamicQuantizeLSTM
    with int8 weights; the rest of the graph is left as it is."""
    import shutil
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="edgekit-lstm-") as tmp:
        out = Path(tmp) / "recurrent.onnx"
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8,
                         op_types_to_quantize=list(DYNAMIC_RECURRENT))
        shutil.copyfile(out, path)


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
                     + ": float (ONNX Runtime has no integer kernel for it)")
    return "; ".join(parts)
