"""What `edgekit inspect` reads from a .tflite file: I/O, op histogram, float ops, big tensors, signatures.

    read_tflite(Path("model.tflite"), top=10)
    # {"inputs": [...], "outputs": [...], "ops": {"CONV_2D": 4, ...}, "quantization": {...},
    #  "tensors_by_size": [...], "signatures": [...]}

Why the flatbuffer schema shipped with ai-edge-litert (`ai_edge_litert.schema_py_generated`, read
through `edgekit.formats.tflite.schema`) and not the separate `tflite` PyPI package: ai-edge-litert is already
a dependency and is the runtime edgekit measures with, so its schema is exactly the one that runtime
was built from: new tensor types (INT4, INT2), new builtin ops and fields such as buffer offsets of
>2 GB models are understood as soon as the runtime understands them. The `tflite` package is a
third-party copy of the schema, released on its own schedule, which lags behind LiteRT and would be
one more dependency to pin. Neither needs TensorFlow or an interpreter, so a file is inspected
without allocating it (an interpreter fails on ops it lacks; inspect must still describe such files).

How "float ops" are decided (see `_float_ops`): in a model whose activations are quantized, an op is
listed when one of its non-constant inputs or outputs is a float tensor (float32 / float16 / float64),
except a QUANTIZE that reads a model input and a DEQUANTIZE that writes a model output (they convert
the model's float I/O and are expected). A DEQUANTIZE or QUANTIZE in the middle of the graph, and
the float op between them, are listed.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import InputError
from edgekit.formats.layer_names import layer_of, layer_precision
from edgekit.formats.tflite import schema as tflite_schema

_FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16"}
_QUANT_TYPES = {"INT8", "UINT8", "INT16", "INT4", "INT2", "UINT4"}


def _dtype(type_name: str) -> str:
    """TensorType name -> numpy-style dtype name ("FLOAT32" -> "float32"); unknown names lowercased."""
    return type_name.lower()


def quantization(tensor) -> dict:
    """{"scale", "zero_point", "quantized_dimension"}: floats/ints per tensor, lists per channel, else None."""
    q = tensor.Quantization()
    if q is None or q.ScaleLength() == 0:
        return {"scale": None, "zero_point": None, "quantized_dimension": None}
    scales = [float(s) for s in q.ScaleAsNumpy()]
    zero_points = [int(z) for z in q.ZeroPointAsNumpy()] if q.ZeroPointLength() else [0] * len(scales)
    if len(scales) == 1:
        return {"scale": scales[0], "zero_point": zero_points[0], "quantized_dimension": None}
    return {"scale": scales, "zero_point": zero_points, "quantized_dimension": int(q.QuantizedDimension())}


class _Graph:
    """One parsed model: op names per opcode, per-subgraph tensors, which tensors are constant."""

    def __init__(self, path: Path):
        self.path = path
        self.schema, self.model, self.buf = tflite_schema.load_model(path)
        schema = self.schema
        self.type_names = tflite_schema._enum_names(schema.TensorType)
        op_names = tflite_schema._enum_names(schema.BuiltinOperator)
        self.opcodes = []
        for i in range(self.model.OperatorCodesLength()):
            code = self.model.OperatorCodes(i)
            name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            if name == "CUSTOM" and code.CustomCode():
                name = code.CustomCode().decode(errors="replace")
            self.opcodes.append(name)

    def type_name(self, tensor) -> str:
        return self.type_names.get(tensor.Type(), str(tensor.Type()))

    def stored_bytes(self, tensor):
        return tflite_schema._buffer_bytes(self.model, self.buf, tensor)

    def is_constant(self, tensor) -> bool:
        return not tensor.IsVariable() and (self.stored_bytes(tensor) is not None or tensor.ExternalBuffer() > 0)

    def ops(self, g: int):
        """(index, op name, input tensor ids, output tensor ids) of subgraph g; -1 (absent) inputs dropped."""
        subgraph = self.model.Subgraphs(g)
        for k in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(k)
            inputs = [int(i) for i in op.InputsAsNumpy() if i >= 0] if op.InputsLength() else []
            outputs = [int(i) for i in op.OutputsAsNumpy() if i >= 0] if op.OutputsLength() else []
            yield k, self.opcodes[op.OpcodeIndex()], inputs, outputs


def _io(graph: _Graph, g: int, ids) -> list[dict]:
    subgraph = graph.model.Subgraphs(g)
    entries = []
    for t in ids:
        tensor = subgraph.Tensors(int(t))
        signature = [int(d) for d in tensor.ShapeSignatureAsNumpy()] if tensor.ShapeSignatureLength() else []
        entry = {"name": tensor.Name().decode(errors="replace"),
                 "shape": signature or tflite_schema._shape(tensor),
                 "dtype": _dtype(graph.type_name(tensor))}
        entry.update(quantization(tensor))
        entries.append(entry)
    return entries


def _edge_subgraphs(graph: _Graph) -> set[int]:
    """Subgraphs whose inputs / outputs are the model's: the signatures' subgraphs, else subgraph 0."""
    found = {int(graph.model.SignatureDefs(i).SubgraphIndex()) for i in range(graph.model.SignatureDefsLength())}
    return found or {0}


def _float_ops(graph: _Graph) -> tuple[list[dict], bool, set[str]]:
    """(ops computing in float, whether any activation is quantized, dtypes of constant tensors).

    Constant tensors (stored in a buffer) never make an op float: a dynamic-range or float16 weight
    is reported through the kind instead. See the module docstring for the rule.
    """
    float_ops, quantized_acts, constant_types = [], False, set()
    edges = _edge_subgraphs(graph)
    for g in range(graph.model.SubgraphsLength()):
        subgraph = graph.model.Subgraphs(g)
        sub_inputs = set(int(i) for i in subgraph.InputsAsNumpy()) if subgraph.InputsLength() else set()
        sub_outputs = set(int(i) for i in subgraph.OutputsAsNumpy()) if subgraph.OutputsLength() else set()
        for k, name, inputs, outputs in graph.ops(g):
            float_types, constant = set(), {t: graph.is_constant(subgraph.Tensors(t)) for t in inputs + outputs}
            for t in inputs + outputs:
                tensor = subgraph.Tensors(t)
                type_name = graph.type_name(tensor)
                if constant[t]:
                    constant_types.add(type_name)
                elif type_name in _FLOAT_TYPES:
                    float_types.add(type_name)
                elif type_name in _QUANT_TYPES and tensor.Quantization() is not None \
                        and tensor.Quantization().ScaleLength():
                    quantized_acts = True
            if not float_types:
                continue
            at_edge = g in edges and (
                (name == "QUANTIZE" and all(t in sub_inputs for t in inputs))
                or (name == "DEQUANTIZE" and all(t in sub_outputs for t in outputs)))
            if at_edge:
                continue
            kinds = "/".join(sorted(_dtype(t) for t in float_types))
            if name == "DEQUANTIZE":
                reason = f"dequantizes to {kinds} inside the model"
            elif name == "QUANTIZE":
                reason = f"quantizes a {kinds} tensor computed inside the model"
            else:
                reason = f"{kinds} inputs/outputs"
            float_ops.append({"op": name, "index": k, "subgraph": g, "reason": reason})
    return float_ops, quantized_acts, constant_types


#: weight ops: op name -> (index of the data input, index of the weight input)
_WEIGHT_OPS = {"CONV_2D": (0, 1), "DEPTHWISE_CONV_2D": (0, 1), "FULLY_CONNECTED": (0, 1), "TRANSPOSE_CONV": (2, 1),
               "BATCH_MATMUL": (0, 1), "CONV_3D": (0, 1)}


def _layers(graph: _Graph) -> list[dict]:
    """The precision of each weight op of the main subgraph (`layer_names.layer_precision`): the
    layer it belongs to (`layer_names.layer_of` its weight's or output's name), its activation and
    weight dtypes. A weight read through a DEQUANTIZE is reported at its stored dtype."""
    subgraph = graph.model.Subgraphs(0)
    dequantized = {outputs[0]: inputs[0] for _, name, inputs, outputs in graph.ops(0)
                   if name == "DEQUANTIZE" and inputs and outputs}
    rows = []
    for k, name, inputs, outputs in graph.ops(0):
        if name not in _WEIGHT_OPS or max(_WEIGHT_OPS[name]) >= len(inputs):
            continue
        data, weight = (inputs[i] for i in _WEIGHT_OPS[name])
        stored = dequantized.get(weight, weight)
        if not graph.is_constant(subgraph.Tensors(stored)):
            continue
        weight_name = subgraph.Tensors(stored).Name().decode(errors="replace")
        output_name = subgraph.Tensors(outputs[0]).Name().decode(errors="replace") if outputs else ""
        activations = _dtype(graph.type_name(subgraph.Tensors(data)))
        weights = _dtype(graph.type_name(subgraph.Tensors(stored)))
        rows.append({"layer": layer_of(weight_name) or layer_of(output_name), "op": name, "index": k,
                     "weight": weight_name, "activations": activations, "weights": weights,
                     "precision": layer_precision(activations, weights, stored != weight)})
    return rows


def _kind(float_ops: list, quantized_acts: bool, constant_types: set[str], layers: list[dict] = ()) -> str:
    if quantized_acts:
        wide = {row["precision"] for row in layers} & {"int8", "int16x8"}
        if float_ops:
            return "mixed"
        return {frozenset({"int16x8"}): "int16x8 (full integer)",
                frozenset({"int8", "int16x8"}): "int8 + int16x8 (full integer)"}.get(frozenset(wide), "int8 (full integer)")
    if constant_types & _QUANT_TYPES:
        return "int8 weights, float activations (dynamic range)"
    if "FLOAT16" in constant_types:
        return "float16 weights"
    return "float"


def _tensors_by_size(graph: _Graph, top: int) -> list[dict]:
    """The `top` largest stored tensors (all subgraphs; a buffer shared by several tensors once)."""
    seen, rows = set(), []
    for g in range(graph.model.SubgraphsLength()):
        subgraph = graph.model.Subgraphs(g)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            raw = graph.stored_bytes(tensor)
            if raw is None or tensor.Buffer() in seen:
                continue
            seen.add(tensor.Buffer())
            rows.append({"name": tensor.Name().decode(errors="replace"), "shape": tflite_schema._shape(tensor),
                         "dtype": _dtype(graph.type_name(tensor)), "bytes": len(raw)})
    rows.sort(key=lambda r: (-r["bytes"], r["name"]))
    return rows[:max(0, top)]


def _signatures(graph: _Graph) -> list[dict]:
    result = []
    for i in range(graph.model.SignatureDefsLength()):
        sig = graph.model.SignatureDefs(i)
        result.append({
            "name": (sig.SignatureKey() or b"").decode(errors="replace"),
            "subgraph": int(sig.SubgraphIndex()),
            "inputs": [(sig.Inputs(j).Name() or b"").decode(errors="replace") for j in range(sig.InputsLength())],
            "outputs": [(sig.Outputs(j).Name() or b"").decode(errors="replace") for j in range(sig.OutputsLength())],
        })
    return result


def read_tflite(path: Path, top: int = 10) -> dict:
    """The format-specific part of `inspect_model` for a .tflite file (see `edgekit.formats.inspect`)."""
    try:
        graph = _Graph(path)
        if graph.model.SubgraphsLength() == 0:
            raise InputError(f"{path}: the .tflite model has no subgraph")
        main = graph.model.Subgraphs(0)
        ops: dict[str, int] = {}
        for g in range(graph.model.SubgraphsLength()):
            for _, name, _, _ in graph.ops(g):
                ops[name] = ops.get(name, 0) + 1
        float_ops, quantized_acts, constant_types = _float_ops(graph)
        layers = _layers(graph)
        kind = _kind(float_ops, quantized_acts, constant_types, layers)
        return {
            "inputs": _io(graph, 0, main.InputsAsNumpy() if main.InputsLength() else []),
            "outputs": _io(graph, 0, main.OutputsAsNumpy() if main.OutputsLength() else []),
            "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
            "quantization": {"kind": kind, "float_ops": float_ops if quantized_acts else [],
                             "float_ops_from": "tensor types" if quantized_acts else None, "layers": layers},
            "tensors_by_size": _tensors_by_size(graph, top),
            "signatures": _signatures(graph),
        }
    except InputError:
        raise
    except Exception as exc:  # flatbuffers raises struct / index errors on a mangled file
        raise InputError(f"{path}: not a valid .tflite model (cannot parse the flatbuffer: "
                         f"{type(exc).__name__}: {exc})") from exc


def custom_ops(ops: dict) -> list[str]:
    """Op names of a histogram that are not TFLite builtins (custom and Flex ops)."""
    from ai_edge_litert import schema_py_generated as schema

    builtins = set(tflite_schema._enum_names(schema.BuiltinOperator).values())
    return [name for name in ops if name not in builtins]


__all__ = ["read_tflite", "quantization", "custom_ops"]
