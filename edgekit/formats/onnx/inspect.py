"""What `edgekit inspect` reads from an .onnx file: I/O, op histogram, float ops, big tensors.

    read_onnx(Path("model.onnx"), top=10)
    # {"inputs": [...], "outputs": [...], "ops": {"Conv": 4, "com.microsoft.QLinearAdd": 1, ...},
    #  "quantization": {...}, "tensors_by_size": [...], "signatures": []}

The protobuf is read with `onnx` (external data left on disk), with ONNX shape inference for the
element types of intermediate tensors. ONNX Runtime, when installed, is asked only which ops it
leaves in float (see below); everything else works without it.

How "float ops" are decided, in a model whose activations are quantized (a QuantizeLinear on a
non-constant tensor, or QLinear* / QGemm ops), for the compute ops of the main graph (not Q/DQ, not
the integer ops, not the data-movement ops in `_NO_COMPUTE` whose neighbours carry the verdict):

- QDQ format (quantize_static's default): ONNX Runtime replaces DequantizeLinear -> op ->
  QuantizeLinear by an integer kernel only for some ops and types, so an op is float when
  1. a non-constant float input does not come from a DequantizeLinear, or
  2. its weight (input 1 of Conv / ConvTranspose / Gemm / MatMul) is a float constant (what
     quantize_static's `nodes_to_exclude` leaves), or
  3. a DequantizeLinear feeding it reads something other than int8/uint8 (an int32 bias is fine
     at input 2 of Conv / Gemm), or
  4. ONNX Runtime's CPU provider has no integer fusion for its type (`_ORT_QDQ_FUSED`, taken from
     onnxruntime's qdq_selector_action_transformer.cc: CumSum wrapped in DQ/Q still runs in float), or
  5. its output does not go to a QuantizeLinear (MatMul, Gemm and ArgMax excepted, which ORT fuses
     without one).
  These rules describe the graph; what ORT actually fuses varies with platform, version and types
  (on x86, ORT 1.32 leaves an int8 Add with a dequantized constant operand in float but fuses the
  same Add in uint8; and ORT 1.32 quantizes the float weights of a Gemm sitting between DQ and Q
  itself, so rule 2 does not leave that Gemm in float there). So when
  onnxruntime is installed the verdict comes from ORT itself: the model is optimized for the CPU
  provider (ORT_ENABLE_EXTENDED, where the QDQ fusions run) and the compute ops still reading float
  activations in the optimized graph are the float ops, each mapped back to the file's node and
  explained with the rule above when one applies. `float_ops_from` says which method was used.
- QOperator format (QLinearConv, ...): an op is float when a non-constant input is float.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgekit.errors import InputError
from edgekit.formats.onnx.layers import read_layers
from edgekit.formats.onnx.qdq_activations import folded_by_ort
from edgekit.formats.onnx.reader import _graphs, _load_onnx, _type_name, dtype_name

_FLOAT = {"FLOAT", "FLOAT16", "DOUBLE", "BFLOAT16"}
_QUANT_WEIGHT = {"INT8", "UINT8", "INT4", "UINT4", "INT16", "UINT16"}
_BITS = {"INT4": 4, "UINT4": 4, "FLOAT4E2M1": 4, "INT2": 2, "UINT2": 2}
_QDQ = {"QuantizeLinear", "DequantizeLinear"}
_INTEGER_OPS = {"QGemm", "QAttention", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear",
                "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulNBits", "GatherBlockQuantized",
                "DynamicQuantizeLSTM"}
_WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
_NO_COMPUTE = {"Constant", "ConstantOfShape", "Shape", "Size", "Identity", "Range", "Dropout", "Cast",
               "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Tile", "Gather",
               "GatherElements", "Slice", "Split", "Concat", "Pad", "DepthToSpace", "SpaceToDepth"}
# Ops ONNX Runtime's CPU provider runs as integer kernels from DQ -> op -> Q (QDQ selectors, plus Relu
# and Clip, folded into the QuantizeLinear after them when they cut nothing it keeps).
_ORT_QDQ_FUSED = {"Conv", "MatMul", "Gemm", "Add", "Mul", "Where", "Concat", "Split", "AveragePool",
                  "GlobalAveragePool", "LeakyRelu", "Sigmoid", "Softmax", "MaxPool", "ReduceMax",
                  "ReduceMin", "Resize", "ArgMax", "Relu", "Clip"}
# ... of which these need no QuantizeLinear on their output (MatMulIntegerToFloat, QGemm, ArgMax's int64).
_OUTPUT_Q_OPTIONAL = {"MatMul", "Gemm", "ArgMax"}


def _is_integer_op(node) -> bool:
    return node.op_type.startswith("QLinear") or node.op_type in _INTEGER_OPS


def _is_qoperator(node) -> bool:
    """An integer op on quantized activations (the QOperator format, not QDQ)."""
    return node.op_type.startswith("QLinear") or node.op_type in {"QGemm", "QAttention"}


def _op_name(node) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _tensor_bytes(tensor) -> int:
    """Bytes a tensor's data takes: raw bytes, the external `length`, else elements x element size."""
    from onnx import TensorProto, helper

    if tensor.raw_data:
        return len(tensor.raw_data)
    if tensor.data_location == TensorProto.EXTERNAL:
        for entry in tensor.external_data:
            if entry.key == "length":
                return int(entry.value)
    if tensor.data_type == TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    name = _type_name(tensor.data_type)
    try:
        bits = _BITS.get(name) or helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize * 8
    except Exception:
        bits = 8
    return math.ceil(math.prod(tensor.dims) * bits / 8)


class _Model:
    """The ModelProto with constants, producers and (inferred) element types of the main graph."""

    def __init__(self, path: Path, proto=None):
        self.path = path
        self.proto = _load_onnx(path) if proto is None else proto
        graph = self.proto.graph
        self.constants = {}
        for g in _graphs(graph):
            self.constants.update((t.name, t) for t in g.initializer)
            for node in g.node:
                if node.op_type == "Constant":
                    self.constants.update((node.output[0], a.t) for a in node.attribute if a.HasField("t"))
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in set(node.input):
                self.consumers.setdefault(name, []).append(node)
        self.graph_outputs = {o.name for o in graph.output}
        self.types = {name: t.data_type for name, t in self.constants.items()}
        self.types.update(self._value_types())

    def _value_types(self) -> dict:
        from onnx import shape_inference

        graph = self.proto.graph
        try:
            graph = shape_inference.infer_shapes(self.proto, strict_mode=False).graph
        except Exception:  # a custom op or a >2 GB proto: use the types the file declares
            pass
        found = {}
        for info in list(graph.input) + list(graph.output) + list(graph.value_info):
            if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type:
                found[info.name] = info.type.tensor_type.elem_type
        return found

    def array(self, name: str):
        from onnx import numpy_helper

        return numpy_helper.to_array(self.constants[name], base_dir=str(self.path.parent))


def _value_info(info) -> dict:
    kind = info.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": info.name, "shape": [], "dtype": kind or "unknown"}
    tensor_type = info.type.tensor_type
    shape = [int(d.dim_value) if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim]
    return {"name": info.name, "shape": shape, "dtype": dtype_name(tensor_type.elem_type)}


def _qparams(model: _Model, node) -> dict:
    """scale / zero point / axis of a QuantizeLinear node (lists when per channel)."""
    scale = model.array(node.input[1]).reshape(-1)
    if len(node.input) > 2 and node.input[2] in model.constants:
        zero_point = model.array(node.input[2]).reshape(-1)
        dtype = dtype_name(model.constants[node.input[2]].data_type)
    else:
        zero_point, dtype = [0] * len(scale), "uint8"
    per_channel = len(scale) > 1
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    return {"scale": [float(s) for s in scale] if per_channel else float(scale[0]),
            "zero_point": [int(z) for z in zero_point] if per_channel else int(zero_point[0]),
            "dtype": dtype, "axis": int(axis) if per_channel else None}


def _io(model: _Model, infos, is_input: bool) -> list[dict]:
    entries = []
    for info in infos:
        if is_input and info.name in model.constants:
            continue  # an initializer listed as a graph input (IR < 4) is not fed by the user
        entry = _value_info(info)
        entry.update(scale=None, zero_point=None, quantized_dimension=None)
        if is_input:
            first_q = next((n for n in model.proto.graph.node
                            if n.op_type == "QuantizeLinear" and n.input and n.input[0] == info.name), None)
            if first_q is not None and first_q.input[1] in model.constants:
                entry["quantization_after_input"] = _qparams(model, first_q)
        entries.append(entry)
    return entries


def _quantized_after(model: _Model, name: str, depth: int = 0) -> bool:
    """True when every consumer of `name` is a QuantizeLinear, or a Relu / Clip that ORT folds into the
    QuantizeLinear after it (only when it cuts nothing that keeps: `qdq_activations.folded_by_ort`)."""
    users = model.consumers.get(name, [])
    if not users or name in model.graph_outputs:
        return False
    return all(u.op_type == "QuantizeLinear"
               or (u.op_type in ("Relu", "Clip") and depth == 0 and all(_quantized_after(model, o, 1) for o in u.output)
                   and folded_by_ort(u, model.consumers.get(u.output[0], []), model.constants))
               for u in users)


def _float_reason(model: _Model, node, qdq: bool) -> str | None:
    """Why `node` computes in float, or None (see the module docstring for the rule)."""
    float_input = False  # an op reading only integer activations (an int8 Clip) runs on integers
    for i, name in enumerate(node.input):
        if not name:
            continue
        elem = model.types.get(name)
        type_name = _type_name(elem) if elem else None
        if type_name is not None and type_name not in _FLOAT:
            continue
        float_input = float_input or name not in model.constants
        dtype = dtype_name(elem) if elem else "float"
        if name in model.constants:
            if node.op_type in _WEIGHT_OPS and i == 1:
                return f"{dtype} weights '{name}' are not quantized"
            continue
        source = model.producer.get(name)
        if not qdq:
            return f"{dtype} input '{name}'"
        if source is None or source.op_type != "DequantizeLinear":
            return f"{dtype} input '{name}' does not come from a DequantizeLinear"
        stored = _type_name(model.types.get(source.input[0], 0))
        bias = node.op_type in ("Conv", "Gemm") and i == 2 and stored == "INT32"
        if stored not in ("INT8", "UINT8") and not bias:
            return (f"input '{name}' is dequantized from {dtype_name(model.types.get(source.input[0], 0))}; "
                    f"ONNX Runtime's integer {node.op_type} takes int8/uint8")
    if not qdq or not float_input:
        return None
    if node.op_type not in _ORT_QDQ_FUSED or node.domain not in ("", "ai.onnx"):
        return (f"ONNX Runtime has no integer kernel for {node.op_type}: it runs in float between "
                "DequantizeLinear and QuantizeLinear")
    if node.op_type not in _OUTPUT_Q_OPTIONAL and not all(_quantized_after(model, o) for o in node.output if o):
        return "its output is not quantized (no QuantizeLinear after it), so ONNX Runtime runs it in float"
    return None


def _static_float_ops(model: _Model, qdq: bool) -> list[dict]:
    float_ops = []
    for index, node in enumerate(model.proto.graph.node):
        if node.op_type in _QDQ or node.op_type in _NO_COMPUTE or _is_integer_op(node):
            continue
        reason = _float_reason(model, node, qdq)
        if reason:
            float_ops.append({"op": _op_name(node), "index": index, "name": node.name, "reason": reason})
    return float_ops


def _ort_optimized(path: Path):
    """(ONNX Runtime's CPU-optimized ModelProto, its version), or None when ORT is absent or fails.

    ORT_ENABLE_EXTENDED is the level at which ORT applies its QDQ -> integer-kernel fusions; the
    optimized graph is what the CPU provider then executes.
    """
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import tempfile

    import onnx
    import onnxruntime

    from edgekit.quiet import native_stderr_silenced

    try:
        with tempfile.TemporaryDirectory() as tmp:
            options = onnxruntime.SessionOptions()
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
            options.log_severity_level = 3
            with native_stderr_silenced():
                onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return onnx.load(options.optimized_model_filepath, load_external_data=False), onnxruntime.__version__
    except Exception:  # a model ORT cannot load: the graph rules still apply
        return None


def _ort_float_ops(model: _Model, static: list[dict]):
    """The compute ops left in float in ONNX Runtime's optimized graph, mapped back to `model`'s nodes.

    An optimized node is float when a non-constant input is float (or of unknown type, e.g. the
    output of a fused com.microsoft float op), skipping Q/DQ, integer and data-movement ops. It is
    matched to the original node that wrote the same output tensor (ORT keeps the names of the
    nodes it leaves alone); `index` is None for a node ORT created by fusing float ops.
    """
    optimized = _ort_optimized(model.path)
    if optimized is None:
        return None
    proto, version = optimized
    ort_model = _Model(model.path, proto)
    original = {out: i for i, node in enumerate(model.proto.graph.node) for out in node.output}
    reasons = {entry["index"]: entry["reason"] for entry in static}
    float_ops = []
    for node in proto.graph.node:
        if node.op_type in _QDQ or node.op_type in _NO_COMPUTE or _is_integer_op(node):
            continue
        if any(_is_float_activation(ort_model, name) for name in node.input if name):
            index = next((original[o] for o in node.output if o in original), None)
            why = reasons.get(index)
            reason = (f"{why} (confirmed by ONNX Runtime {version}'s optimized CPU graph)" if why else
                      f"ONNX Runtime {version} (CPU) did not fuse it into an integer kernel, so it runs in float")
            source = model.proto.graph.node[index] if index is not None else node
            if _op_name(source) != _op_name(node):
                reason += f"; ONNX Runtime runs it as part of a float {_op_name(node)}"
            float_ops.append({"op": _op_name(source), "index": index, "name": source.name, "reason": reason})
    return float_ops


def _is_float_activation(model: _Model, name: str) -> bool:
    if name in model.constants:
        return False
    elem = model.types.get(name)
    if elem:
        return _type_name(elem) in _FLOAT
    source = model.producer.get(name)
    return source is None or not _produces_integer(source)


def _produces_integer(node) -> bool:
    """Whether an op's outputs are integer tensors (for fused com.microsoft ops shape inference cannot type)."""
    if node.op_type == "QGemm":  # without y_scale / y_zero_point QGemm writes float
        return len(node.input) > 7 and bool(node.input[7])
    return (node.op_type.startswith("QLinear")
            or node.op_type in {"QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QAttention"})


def _quantization(model: _Model) -> dict:
    """{"kind", "float_ops", "float_ops_from"}; see the module docstring."""
    all_nodes = [n for g in _graphs(model.proto.graph) for n in g.node]
    qoperator = any(_is_qoperator(n) for n in all_nodes)
    quantized_acts = qoperator or any(n.op_type == "QuantizeLinear" and n.input[0] not in model.constants
                                      for n in all_nodes)
    weight_inputs = {n.input[0] for n in all_nodes if n.op_type == "DequantizeLinear"}
    weight_inputs |= {name for n in all_nodes if _is_integer_op(n) for name in n.input}
    int_weights = any(name in model.constants and _type_name(model.constants[name].data_type) in _QUANT_WEIGHT
                      for name in weight_inputs)
    float16 = any(_type_name(t.data_type) == "FLOAT16" for t in model.constants.values())
    float_ops, source = [], None
    layers = read_layers(model)
    if quantized_acts:
        float_ops = _static_float_ops(model, qdq=not qoperator)
        source = "graph rules"
        checked = _ort_float_ops(model, float_ops)
        if checked is not None:
            float_ops, source = checked, "onnxruntime optimized graph"
        integer = frozenset({row["precision"] for row in layers} & {"int8", "int16x8"})
        kind = "mixed" if float_ops else {
            frozenset({"int16x8"}): "int16x8 (full integer)",
            frozenset({"int8", "int16x8"}): "int8 + int16x8 (full integer)"}.get(integer, "int8 (full integer)")
    elif int_weights:
        kind = "int8 weights, float activations (dynamic range)"
    elif float16:
        kind = "float16 weights"
    else:
        kind = "float"
    return {"kind": kind, "float_ops": float_ops, "float_ops_from": source, "layers": layers}


def _tensors_by_size(model: _Model, top: int) -> list[dict]:
    rows = [{"name": name, "shape": [int(d) for d in t.dims], "dtype": dtype_name(t.data_type),
             "bytes": _tensor_bytes(t)} for name, t in model.constants.items()]
    for g in _graphs(model.proto.graph):
        for sparse in g.sparse_initializer:
            rows.append({"name": sparse.values.name, "shape": [int(d) for d in sparse.dims],
                         "dtype": dtype_name(sparse.values.data_type),
                         "bytes": _tensor_bytes(sparse.values) + _tensor_bytes(sparse.indices)})
    rows.sort(key=lambda r: (-r["bytes"], r["name"]))
    return rows[:max(0, top)]


def read_onnx(path: Path, top: int = 10) -> dict:
    """The format-specific part of `inspect_model` for an .onnx file (see `edgekit.formats.inspect`)."""
    model = _Model(path)
    try:
        ops: dict[str, int] = {}
        for g in _graphs(model.proto.graph):
            for node in g.node:
                ops[_op_name(node)] = ops.get(_op_name(node), 0) + 1
        return {
            "inputs": _io(model, model.proto.graph.input, True),
            "outputs": _io(model, model.proto.graph.output, False),
            "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
            "quantization": _quantization(model),
            "tensors_by_size": _tensors_by_size(model, top),
            "signatures": [],
        }
    except InputError:
        raise
    except Exception as exc:  # external data missing for a scale, a malformed attribute, ...
        raise InputError(f"{path}: cannot read this .onnx model ({type(exc).__name__}: {exc})") from exc


__all__ = ["read_onnx", "dtype_name"]
