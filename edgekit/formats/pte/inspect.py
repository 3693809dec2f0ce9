"""The .pte part of `edgekit inspect`: what XNNPACK runs and what it left to ExecuTorch's own kernels.

    info = read_pte(Path("runs/x/model.pte"))
    info["delegation"]   # {"backend": "XnnpackBackend", "delegates": 1,
                         #  "delegated_ops": {"XNNConv2d": 2, ...}, "non_delegated_ops": {}}

`ops` is one histogram of both: XNNPACK node names (XNNConv2d, XNNFullyConnected, XNNConvert for a
quantize / dequantize) for the delegated ops, operator names (aten::view_copy.default) for the
calls the execution plan makes itself. Quantization is read from the XNNPACK values' datatypes, by the
rule the .tflite inspector uses ("tensor types"): in a model with quantized activations, an op is
float when it reads or writes a non-constant float tensor (XNNConvert, the boundary conversion,
excepted); an op ExecuTorch runs outside the delegate is reported as such. ExecuTorch keeps no layer
names in the program, so `layers[].layer` is null and weights are named after their node
(`xnnpack0/XNNConv2d_0.filter`).
"""

from __future__ import annotations

from pathlib import Path

from edgekit.formats.pte.program import WEIGHT_NODES, XNN_DATATYPES, Program, read_program

#: plan operators that only move or describe memory: not compute left outside the delegate
_BOOKKEEPING = ("executorch_prim::", "aten::sym_size", "aten::view_copy", "aten::_to_dim_order_copy",
                "aten::clone", "dim_order_ops::")


def _io(tensors) -> list[dict]:
    return [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": None, "zero_point": None,
             "quantized_dimension": None} for t in tensors]


def _value_types(program: Program) -> list[dict[int, tuple[str, bool]]]:
    """Per delegate: value id -> (XNNPACK datatype, is constant)."""
    types = []
    for delegate in program.delegates:
        table = {}
        for position, entry in enumerate(delegate.values):
            union = entry.get("xvalue_union") or {}
            fields = union.get("tensor_value", union)
            table[int(fields.get("id_out", position))] = (fields.get("datatype", ""), bool(fields.get("constant_buffer_idx")))
        types.append(table)
    return types


def _tensor_ids(node: dict) -> list[int]:
    return [int(v) for k, v in node["xnode_union"].items() if k.endswith("_id") and isinstance(v, int)]


def _quantization(program: Program) -> dict:
    types = _value_types(program)
    datatypes = {dt for table in types for dt, _ in table.values()}
    quantized_acts = any(dt in ("xnn_datatype_qint8", "xnn_datatype_quint8") and not const
                         for table in types for dt, const in table.values())
    float_ops, layers = [], []
    for delegate, table in zip(program.delegates, types):
        counts: dict[str, int] = {}
        for index, node in enumerate(delegate.nodes):
            kind = node["xnode_union_type"]
            name = f"xnnpack{delegate.index}/{kind}_{counts.get(kind, 0)}"
            counts[kind] = counts.get(kind, 0) + 1
            ids = _tensor_ids(node)
            float_io = any(table.get(i, ("", True))[0] == "xnn_datatype_fp32" and not table.get(i, ("", True))[1]
                           for i in ids)
            if quantized_acts and float_io and kind != "XNNConvert":
                float_ops.append({"op": kind, "index": index, "name": name, "reason": "float32 inputs/outputs"})
            if kind in WEIGHT_NODES and "filter_id" in node["xnode_union"]:
                weight = table.get(node["xnode_union"]["filter_id"], ("", False))[0]
                data = table.get(node["xnode_union"].get("input1_id", -1), ("", False))[0]
                layers.append(_layer(name, kind, weight, data))
    if quantized_acts:
        for op, count in program.kernel_ops().items():
            if not op.startswith(_BOOKKEEPING):
                float_ops.append({"op": op, "index": None, "name": f"{count} call(s) outside the delegate",
                                  "reason": "not delegated to XNNPACK (ExecuTorch's portable kernels)"})
        kind = "mixed" if float_ops else "int8 (full integer)"
    elif "xnn_datatype_qdint8" in datatypes or any(l["precision"] == "dynamic" for l in layers):
        kind = "int8 weights, float activations (dynamic range)"
    elif any(t.dtype == "float16" for t in program.constants()):
        kind = "float16 weights"
    else:
        kind = "float"
    return {"kind": kind, "float_ops": float_ops, "float_ops_from": "tensor types" if quantized_acts else None,
            "layers": layers}


def _layer(name: str, op: str, weight: str, data: str) -> dict:
    weights = XNN_DATATYPES.get(weight, (weight, 0))[0]
    activations = "dynamic" if data == "xnn_datatype_qdint8" else XNN_DATATYPES.get(data, (data, 0))[0]
    if weights == "int8" and activations == "int8":
        precision = "int8"
    elif weights == "int8" and activations == "dynamic":
        precision = "dynamic"
    elif weights == "float16":
        precision = "float16"
    else:
        precision = "float"
    return {"layer": None, "op": op, "name": name, "weight": f"{name}.filter", "activations": activations,
            "weights": weights, "precision": precision}


def delegation(program: Program) -> dict:
    """Which ops XNNPACK runs (`delegated_ops`, by XNNPACK node) and which the plan calls itself
    (`non_delegated_ops`, bookkeeping such as views included), with the number of XNNPACK subgraphs."""
    return {"backend": "XnnpackBackend", "delegates": len(program.delegates),
            "delegated_ops": dict(sorted(program.delegated_ops().items(), key=lambda kv: (-kv[1], kv[0]))),
            "non_delegated_ops": dict(sorted(program.kernel_ops().items(), key=lambda kv: (-kv[1], kv[0]))),
            "other_backends": sorted(set(program.other_delegates))}


def read_pte(path: Path, top: int = 10) -> dict:
    """The format-specific part of `inspect_model` for a .pte file (see `edgekit.formats.inspect`)."""
    program = read_program(path)
    ops = {**program.delegated_ops()}
    for op, count in program.kernel_ops().items():
        ops[op] = ops.get(op, 0) + count
    tensors = sorted(({"name": t.name, "shape": list(t.shape), "dtype": t.dtype, "bytes": int(t.bytes)}
                      for t in program.constants()), key=lambda r: (-r["bytes"], r["name"]))
    return {
        "inputs": _io(program.inputs),
        "outputs": _io(program.outputs),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "quantization": _quantization(program),
        "tensors_by_size": tensors[:max(0, top)],
        "signatures": [],
        "delegation": delegation(program),
    }


__all__ = ["read_pte", "delegation"]
