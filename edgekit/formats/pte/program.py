"""What a .pte file holds, read from the file alone (no runtime, no edge program).

    program = read_program("runs/x/model.pte")
    program.delegated_ops()      # {"XNNConv2d": 2, "XNNFullyConnected": 1, ...}  (run by XNNPACK)
    program.kernel_ops()         # {"aten::view_copy.default": 1}  (run by ExecuTorch's own kernels)
    program.constants()          # every constant tensor: where, shape, dtype, bytes

A .pte is an ExecuTorch `Program` flatbuffer followed by segments (delegate payloads, named data).
ExecuTorch has no public reader for it, so this module is the one place that uses its private
deserializer, `executorch.exir._serialize._program.deserialize_pte_binary` (pure Python over the
flatbuffer schema ExecuTorch ships), and decodes each XNNPACK payload (an `XNNHeader`, then an
`XNNGraph` flatbuffer) to JSON with the `flatc` binary and `schema.fbs` that ExecuTorch's XNNPACK
backend ships (`executorch.exir._serialize._flatbuffer._flatc_decompile`). Both are pinned with
executorch 1.5.1 in constraints.txt; a file that does not parse is an InputError naming it.

What the execution plan calls itself (`KernelCall` instructions, named in `operators`) is what XNNPACK
did not take; each `DelegateCall` runs one XNNPACK subgraph, whose nodes (`xnodes`) are the
delegated ops and whose constant values (`xvalues` with a `constant_buffer_idx`) are the weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from edgekit.errors import InputError
from edgekit.quiet import native_stderr_silenced, quiet_python_loggers

#: bytes 4..8 of every .pte: the flatbuffer file identifier of ExecuTorch's program schema
PTE_IDENTIFIER = b"ET12"
XNNPACK_BACKEND = "XnnpackBackend"
#: ExecuTorch ScalarType codes (c10's numbering) -> numpy-style names
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool", 15: "bfloat16"}
#: XNNPACK datatypes -> (numpy-style name, bytes per element); qc* are per-channel quantized, qd* dynamic
XNN_DATATYPES = {
    "xnn_datatype_fp32": ("float32", 4), "xnn_datatype_fp16": ("float16", 2), "xnn_datatype_bf16": ("bfloat16", 2),
    "xnn_datatype_qint8": ("int8", 1), "xnn_datatype_quint8": ("uint8", 1), "xnn_datatype_qint32": ("int32", 4),
    "xnn_datatype_qcint8": ("int8", 1), "xnn_datatype_qcint32": ("int32", 4), "xnn_datatype_qcint4": ("int4", 0.5),
    "xnn_datatype_qdint8": ("int8", 1), "xnn_datatype_qbint4": ("int4", 0.5), "xnn_datatype_qpint8": ("int8", 1),
}
#: XNNPACK nodes that hold a weight (`filter_id`), as in the other formats' weight ops
WEIGHT_NODES = ("XNNConv2d", "XNNDepthwiseConv2d", "XNNFullyConnected", "XNNConvTranspose2d")


@dataclass
class Tensor:
    """An input, output or constant tensor of the program. `where` names a constant by its delegate
    and value id (`xnnpack0/v4`, `xnnpack0/XNNConv2d_0.filter` for a weight) or its plan value."""

    name: str
    shape: list[int]
    dtype: str
    bytes: int = 0
    quantization: str | None = None  # "PerTensorQuant", "PerChannelQuant", ... (XNNPACK values)
    scale: float | list[float] | None = None
    zero_point: int | None = None
    data: bytes | None = None  # a constant's stored bytes (named data), when found


@dataclass
class Delegate:
    """One XNNPACK subgraph: its nodes in order, its values by id and which value each node's weight is."""

    index: int
    nodes: list[dict]
    values: list[dict]
    constants: dict[int, Tensor] = field(default_factory=dict)


@dataclass
class Program:
    inputs: list[Tensor]
    outputs: list[Tensor]
    kernels: list[str]  # the operator of each KernelCall, in execution order
    delegates: list[Delegate]
    other_delegates: list[str]  # ids of delegates of other backends
    plan_constants: list[Tensor]

    def delegated_ops(self) -> dict[str, int]:
        ops: dict[str, int] = {}
        for delegate in self.delegates:
            for node in delegate.nodes:
                ops[node["xnode_union_type"]] = ops.get(node["xnode_union_type"], 0) + 1
        return ops

    def kernel_ops(self) -> dict[str, int]:
        ops: dict[str, int] = {}
        for name in self.kernels:
            ops[name] = ops.get(name, 0) + 1
        return ops

    def constants(self) -> list[Tensor]:
        return [t for d in self.delegates for t in d.constants.values()] + self.plan_constants

    def weights(self) -> list[tuple[str, dict, Tensor]]:
        """(op name, node, weight tensor) of every weight node of every XNNPACK subgraph."""
        found = []
        for delegate in self.delegates:
            for node in delegate.nodes:
                kind = node["xnode_union_type"]
                weight = delegate.constants.get(node["xnode_union"].get("filter_id", -1)) if kind in WEIGHT_NODES else None
                if weight is not None:
                    found.append((kind, node, weight))
        return found


@contextlib.contextmanager
def quiet_imports():
    """Import ExecuTorch's serializer without the notes torch and torchao log on import (torchao's
    missing CUDA kernels, torch's pytree deprecations), which `edgekit inspect` users must not see."""
    with native_stderr_silenced():
        yield
    quiet_python_loggers()


def _value(entry: dict) -> tuple[dict, dict | None, str | None]:
    """(tensor fields, quantization params, their kind) of an XValue."""
    union = entry.get("xvalue_union") or {}
    if entry.get("xvalue_union_type") == "XNNQuantizedTensorValue":
        return union.get("tensor_value") or {}, union.get("quant_params") or {}, union.get("quant_params_type")
    return union, None, None


def _decode_xnngraph(payload: bytes) -> dict:
    """The XNNGraph of an XNNPACK delegate payload, as JSON (flatc with the backend's schema.fbs)."""
    with quiet_imports():
        from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
        from executorch.exir._serialize._flatbuffer import _flatc_decompile

    header = XNNHeader.from_bytes(payload[:XNNHeader.EXPECTED_LENGTH])
    graph = payload[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size]
    with tempfile.TemporaryDirectory(prefix="edgekit-pte-") as tmp:
        (Path(tmp) / "graph.bin").write_bytes(graph)
        _flatc_decompile(tmp, _xnnpack_schema(), str(Path(tmp) / "graph.bin"), ["--raw-binary"])
        text = (Path(tmp) / "graph.json").read_text(encoding="utf-8")
    return json.loads(re.sub(r":\s*(-?inf|nan)\b", r': "\1"', text))  # flatc writes bare inf / nan


@lru_cache(maxsize=1)
def _xnnpack_schema() -> str:
    import executorch.backends.xnnpack.serialization as serialization

    return str(Path(list(serialization.__path__)[0]) / "schema.fbs")


def _delegate(index: int, payload: bytes, named: dict[str, bytes]) -> Delegate:
    graph = _decode_xnngraph(payload)
    constant_data = graph.get("constant_data") or []
    delegate = Delegate(index=index, nodes=graph.get("xnodes") or [], values=graph.get("xvalues") or [])
    names: dict[int, str] = {}
    counts: dict[str, int] = {}
    for node in delegate.nodes:  # name each weight and bias after its node: XNNConv2d_0.filter
        kind = node["xnode_union_type"]
        for role in ("filter_id", "bias_id"):
            if role in node["xnode_union"] and kind in WEIGHT_NODES:
                names[node["xnode_union"][role]] = f"{kind}_{counts.get(kind, 0)}.{role[:-3]}"
        counts[kind] = counts.get(kind, 0) + 1
    for position, entry in enumerate(delegate.values):
        fields, params, kind = _value(entry)
        buffer = int(fields.get("constant_buffer_idx") or 0)
        if not buffer or buffer >= len(constant_data):
            continue
        value_id = int(fields.get("id_out", position))
        dtype, width = XNN_DATATYPES.get(fields.get("datatype", ""), (str(fields.get("datatype")), 0))
        shape = [int(d) for d in fields.get("dims") or []]
        key = constant_data[buffer].get("named_key") or ""
        scale = (params or {}).get("scale")
        delegate.constants[value_id] = Tensor(
            name=f"xnnpack{index}/{names.get(value_id, f'v{value_id}')}", shape=shape, dtype=dtype,
            bytes=int(constant_data[buffer].get("size") or math.ceil(math.prod(shape) * width)),
            quantization=kind, scale=scale, zero_point=(params or {}).get("zero_point"), data=named.get(key))
    return delegate


def _plan_tensor(name: str, value) -> Tensor:
    return Tensor(name=name, shape=[int(d) for d in value.sizes], dtype=SCALAR_TYPES.get(int(value.scalar_type),
                                                                                       str(value.scalar_type)))


def parse(data: bytes, path: Path) -> Program:
    """The Program of the .pte bytes `data`; InputError naming `path` when they are not one."""
    if len(data) < 8 or data[4:8] != PTE_IDENTIFIER:
        raise InputError(f"{path}: not a valid .pte model (no '{PTE_IDENTIFIER.decode()}' ExecuTorch program "
                         "identifier; the file is truncated, corrupt or of another format)")
    try:
        with quiet_imports():
            from executorch.exir._serialize._program import deserialize_pte_binary

        pte = deserialize_pte_binary(data)
        named = {}
        if pte.named_data is not None:  # key -> DataEntry(buffer_index, ...) into `buffers` (bytes)
            buffers = pte.named_data.buffers
            named = {key: bytes(buffers[entry.buffer_index]) for key, entry in pte.named_data.pte_data.items()}
        plan = pte.program.execution_plan[0]
        delegates, others = [], []
        for delegate in plan.delegates:
            if delegate.id != XNNPACK_BACKEND:
                others.append(delegate.id)
                continue
            payload = pte.program.backend_delegate_data[delegate.processed.index].data
            delegates.append(_delegate(len(delegates), bytes(payload), named))
        kernels = []
        for chain in plan.chains:
            for instruction in chain.instructions:
                args = instruction.instr_args
                if type(args).__name__ == "KernelCall":
                    op = plan.operators[args.op_index]
                    kernels.append(f"{op.name}.{op.overload}" if op.overload else op.name)
        constants = []
        for position, value in enumerate(plan.values):
            val = value.val
            if type(val).__name__ == "Tensor" and int(getattr(val, "data_buffer_idx", 0) or 0) > 0:
                tensor = _plan_tensor(f"plan/v{position}", val)
                storage = pte.program.constant_buffer[val.data_buffer_idx].storage
                tensor.bytes, tensor.data = len(storage), bytes(storage)
                constants.append(tensor)
        return Program(
            inputs=[_plan_tensor(f"input_{i}", plan.values[v].val) for i, v in enumerate(plan.inputs)],
            outputs=[_plan_tensor(f"output_{i}", plan.values[v].val) for i, v in enumerate(plan.outputs)],
            kernels=kernels, delegates=delegates, other_delegates=others, plan_constants=constants)
    except InputError:
        raise
    except Exception as exc:  # a truncated segment, a payload that is no XNNGraph, ...
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise InputError(f"{path}: not a valid .pte model ({type(exc).__name__}: {text})") from exc


def read_program(path: str | Path) -> Program:
    """The Program stored in the .pte file at `path` (see the module docstring)."""
    p = Path(path)
    return parse(p.read_bytes(), p)
