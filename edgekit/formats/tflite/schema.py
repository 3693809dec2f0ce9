"""Reading a .tflite file's flatbuffer without TensorFlow: parameter count and weight sparsity.

The file is read with `ai_edge_litert.schema_py_generated`, the flatc-generated reader of the
.tflite schema that ships inside ai-edge-litert: it parses the flatbuffer directly, needs neither
TensorFlow (`tf.lite` would import all of TF, seconds and gigabytes) nor an interpreter (which
would have to allocate and could fail on ops it lacks), and matches the runtime edgekit measures
with. The schema module is imported inside the functions, so importing this module stays cheap.

Sparse-encoded tensors (`Tensor.sparsity` set; TFLiteConverter writes them with
`Optimize.EXPERIMENTAL_SPARSITY` and a DENSIFY op in front of their consumer) are decoded by
`sparse_positions`, which follows the schema's `SparsityParameters` the way LiteRT's
FormatConverter does; see its docstring.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

# Ops whose input 1 is a weight / filter tensor (TRANSPOSE_CONV's inputs are output_shape, weights,
# input, bias, so it fits too), and ops that sit between a stored weight and its consumer.
WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL")
PASS_THROUGH_OPS = ("DEQUANTIZE", "DENSIFY")

# TensorType name -> (numpy dtype, bits per element); sub-byte types are packed, low bits first.
_DTYPES = {
    "FLOAT32": (np.float32, 32), "FLOAT16": (np.float16, 16), "FLOAT64": (np.float64, 64),
    "INT8": (np.int8, 8), "UINT8": (np.uint8, 8), "INT16": (np.int16, 16), "UINT16": (np.uint16, 16),
    "INT32": (np.int32, 32), "UINT32": (np.uint32, 32), "INT64": (np.int64, 64), "UINT64": (np.uint64, 64),
    "BFLOAT16": (np.uint16, 16), "FLOAT8_E4M3FN": (np.uint8, 8), "FLOAT8_E5M2": (np.uint8, 8),
    "INT4": (np.int8, 4), "UINT4": (np.uint8, 4), "INT2": (np.int8, 2),
}
# Float types stored as raw bits (no numpy dtype): zero is +0 or -0, i.e. every bit but the sign clear.
_RAW_FLOAT_SIGN_MASK = {"BFLOAT16": 0x7FFF, "FLOAT8_E4M3FN": 0x7F, "FLOAT8_E5M2": 0x7F}


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _enum_names(enum_class) -> dict:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def load_model(path: Path, data: bytes | None = None):
    """(schema module, Model, file bytes); InputError when the file is not a .tflite flatbuffer."""
    schema = _schema()
    buf = path.read_bytes() if data is None else data
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise InputError(f"{path}: not a valid .tflite model (no 'TFL3' flatbuffer identifier)")
    return schema, schema.Model.GetRootAs(buf, 0), buf


def _parse_error(path: Path, exc: Exception) -> InputError:
    # flatbuffers raises struct / index errors on a mangled file
    return InputError(f"{path}: not a valid .tflite model (cannot parse the flatbuffer: {exc})")


def _shape(tensor) -> list[int]:
    return [int(d) for d in tensor.ShapeAsNumpy()] if tensor.ShapeLength() else []


def _buffer_bytes(model, buf: bytes, tensor):
    """The tensor's stored bytes (inline, or at offset/size in the file's tail), or None if it has none."""
    index = tensor.Buffer()
    if not 0 < index < model.BuffersLength():
        return None
    buffer = model.Buffers(index)
    if buffer.DataLength() > 0:
        return buffer.DataAsNumpy().tobytes()
    if buffer.Offset() > 1 and buffer.Size() > 0:
        return buf[buffer.Offset():buffer.Offset() + buffer.Size()]
    return None


def param_count(path: Path) -> int:
    """Elements of the constant tensors (those whose buffer holds data) of subgraph 0.

    A tensor holds data when its buffer index is > 0 and the buffer has inline bytes, or an
    offset/size into the file's tail (models over 2 GB), or when it names an external buffer.
    Variable tensors (e.g. LSTM state) are not weights and are skipped; a buffer shared by several
    tensors counts once; sparse tensors count at their dense shape.
    """
    _, model, _ = load_model(path)
    try:
        if model.SubgraphsLength() == 0:
            return 0
        subgraph = model.Subgraphs(0)
        n_buffers = model.BuffersLength()
        seen: set = set()
        total = 0
        for i in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(i)
            if tensor.IsVariable():
                continue
            index = tensor.Buffer()
            key = None
            if 0 < index < n_buffers:
                buffer = model.Buffers(index)
                if buffer.DataLength() > 0 or (buffer.Offset() > 1 and buffer.Size() > 0):
                    key = ("buffer", index)
            if key is None and tensor.ExternalBuffer() > 0:
                key = ("external", tensor.ExternalBuffer())
            if key is None or key in seen:
                continue
            seen.add(key)
            total += math.prod(_shape(tensor))
        return int(total)
    except Exception as exc:
        raise _parse_error(path, exc) from exc


def is_sparse_encoded(path: Path) -> bool:
    """True when any tensor of any subgraph carries SparsityParameters."""
    _, model, _ = load_model(path)
    try:
        return any(model.Subgraphs(g).Tensors(i).Sparsity() is not None
                   for g in range(model.SubgraphsLength())
                   for i in range(model.Subgraphs(g).TensorsLength()))
    except Exception as exc:
        raise _parse_error(path, exc) from exc


# ---- sparse tensors --------------------------------------------------------------------------

def _index_vector(schema, kind: int, table) -> np.ndarray:
    """The int array held by a DimensionMetadata's array_segments / array_indices union."""
    classes = {schema.SparseIndexVector.Int32Vector: schema.Int32Vector,
               schema.SparseIndexVector.Uint16Vector: schema.Uint16Vector,
               schema.SparseIndexVector.Uint8Vector: schema.Uint8Vector}
    if kind not in classes or table is None:
        raise ValueError(f"sparse dimension without array_segments / array_indices (type {kind})")
    vector = classes[kind]()
    vector.Init(table.Bytes, table.Pos)
    values = vector.ValuesAsNumpy()
    return np.asarray(values if vector.ValuesLength() else [], dtype=np.int64)


def sparse_positions(schema, sparsity, dense_shape: list[int]) -> np.ndarray:
    """Flat indices into the dense tensor of the values a sparse tensor stores, in storage order.

    The TFLite sparse format (schema `SparsityParameters`, LiteRT's FormatConverter) stores a tensor
    of rank n as a tree of `len(traversal_order)` levels: the first n levels are the tensor's
    dimensions in `traversal_order` (over the *blocked* shape, dim / block size, when blocked), the
    remaining k levels are the dimensions inside a block, and `block_map[b]` names the original
    dimension that block level b subdivides. Each level's `dim_metadata` is either DENSE (every
    index 0..dense_size-1 is present) or SPARSE_CSR: the children of node p are
    `array_indices[array_segments[p]:array_segments[p + 1]]`, p being the node's position in its
    level. A node's position in the next level is `p * dense_size + i` below a DENSE level and
    the position `j` in `array_indices` below a CSR level. The leaves, walked depth first, are the
    stored values in buffer order. The walk is done level by level with numpy, carrying every
    path's position and per-level index; a leaf's original coordinate along dimension d is its
    outer index times the block size plus its in-block index.

    So the number of stored values is the number of leaves (checked against the buffer size by the
    caller); stored values may themselves be zero (dense dims and blocks keep their zeros), the
    entries not stored are the format's implicit zeros.
    """
    traversal = [int(t) for t in sparsity.TraversalOrderAsNumpy()] if sparsity.TraversalOrderLength() else []
    block_map = [int(b) for b in sparsity.BlockMapAsNumpy()] if sparsity.BlockMapLength() else []
    rank = len(dense_shape)
    if len(traversal) != rank + len(block_map) or sparsity.DimMetadataLength() != len(traversal):
        raise ValueError(f"sparsity parameters do not fit a rank-{rank} tensor "
                         f"(traversal_order {traversal}, block_map {block_map})")
    positions = np.zeros(1, np.int64)
    indices: list[np.ndarray] = []   # per level, the index of every path at that level
    sizes: list[int] = []
    for level in range(len(traversal)):
        meta = sparsity.DimMetadata(level)
        if meta.Format() == schema.DimensionType.DENSE:
            size = int(meta.DenseSize())
            children = np.tile(np.arange(size, dtype=np.int64), len(positions))
            indices = [np.repeat(idx, size) for idx in indices]
            positions = np.repeat(positions, size) * size + children
        else:
            segments = _index_vector(schema, meta.ArraySegmentsType(), meta.ArraySegments())
            array_indices = _index_vector(schema, meta.ArrayIndicesType(), meta.ArrayIndices())
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            group_begin = np.cumsum(counts) - counts
            positions = np.repeat(starts - group_begin, counts) + np.arange(int(counts.sum()), dtype=np.int64)
            children = array_indices[positions]
            indices = [np.repeat(idx, counts) for idx in indices]
            size = 0
        indices.append(children)
        sizes.append(size)
    coords: list = [None] * rank
    for level in range(rank):
        coords[traversal[level]] = indices[level]
    for level in range(rank, len(traversal)):
        dim = block_map[traversal[level] - rank]
        coords[dim] = coords[dim] * sizes[level] + indices[level]   # block levels are DENSE
    return np.ravel_multi_index(coords, dense_shape) if rank else np.zeros(len(positions), np.int64)


# ---- weight sparsity -------------------------------------------------------------------------

def _unpack(raw: bytes, dtype, bits: int) -> np.ndarray:
    """Stored elements as a numpy array; sub-byte types unpacked low bits first, sign-extended if signed."""
    if bits >= 8:
        return np.frombuffer(raw, dtype=dtype)
    data = np.frombuffer(raw, dtype=np.uint8)
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    values = np.stack([(data >> (bits * k)) & mask for k in range(per_byte)], axis=1).reshape(-1).astype(np.int16)
    if np.dtype(dtype).kind == "i":
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values


def _zero_points(tensor, type_name: str, rank: int):
    """(zero points, quantized dimension) of an integer tensor; ([0], 0) for floats / unquantized."""
    quant = tensor.Quantization()
    if type_name in _RAW_FLOAT_SIGN_MASK or np.dtype(_DTYPES[type_name][0]).kind == "f":
        return np.zeros(1, np.int64), 0
    if quant is None or quant.ZeroPointLength() == 0:
        return np.zeros(1, np.int64), 0
    axis = int(quant.QuantizedDimension()) if rank else 0
    return quant.ZeroPointAsNumpy().astype(np.int64), axis


def _is_zero(values: np.ndarray, type_name: str, zero_point, flat_positions, shape, axis) -> np.ndarray:
    """Boolean mask: which values (at these flat positions of the dense tensor) are zero."""
    if type_name in _RAW_FLOAT_SIGN_MASK:
        return (values & _RAW_FLOAT_SIGN_MASK[type_name]) == 0
    if zero_point.size == 1:
        return values == zero_point[0]
    channel = np.unravel_index(flat_positions, shape)[axis]
    if zero_point.size != shape[axis]:
        raise ValueError(f"{zero_point.size} zero points for {shape[axis]} channels along dimension {axis}")
    return values == zero_point[channel]


def _weight_tensor_ids(schema, model):
    """(subgraph, tensor) index of every stored tensor feeding a weight op's input 1, first use first."""
    op_names = _enum_names(schema.BuiltinOperator)
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        codes.append(op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"))
    found: list[tuple[int, int]] = []
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        producer = {}
        ops = []
        for k in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(k)
            inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            name = codes[op.OpcodeIndex()]
            ops.append((name, inputs))
            for out in (op.OutputsAsNumpy() if op.OutputsLength() else []):
                producer[int(out)] = (name, inputs)
        for name, inputs in ops:
            if name not in WEIGHT_OPS or len(inputs) < 2 or inputs[1] < 0:
                continue
            tensor, hops = inputs[1], 0
            while tensor in producer and producer[tensor][0] in PASS_THROUGH_OPS and hops < 8:
                tensor, hops = producer[tensor][1][0], hops + 1
            if (g, tensor) not in found:
                found.append((g, tensor))
    return found


def weight_layers(path: Path) -> list[dict]:
    """One entry per stored weight tensor: name, dense shape, elements, zeros, sparsity, encoding.

    Weight tensors are the constant tensors of rank >= 2 at input 1 of CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED, TRANSPOSE_CONV and BATCH_MATMUL, followed back through DEQUANTIZE (float16 and
    some dynamic-range models) and DENSIFY (sparse-encoded models). A zero is 0.0 (either sign) for
    float types and the zero point for integer types (per channel along `quantized_dimension` when
    the tensor has several). A buffer shared by several ops counts once; tensors stored in an
    external buffer file are not read and not listed.
    """
    schema, model, buf = load_model(path)
    type_names = _enum_names(schema.TensorType)
    layers = []
    try:
        seen_buffers: set = set()
        for g, t in _weight_tensor_ids(schema, model):
            tensor = model.Subgraphs(g).Tensors(t)
            shape = _shape(tensor)
            raw = _buffer_bytes(model, buf, tensor)
            if raw is None or len(shape) < 2 or tensor.Buffer() in seen_buffers:
                continue
            seen_buffers.add(tensor.Buffer())
            type_name = type_names.get(tensor.Type(), str(tensor.Type()))
            if type_name not in _DTYPES:
                raise ValueError(f"tensor '{tensor.Name().decode()}' has unsupported type {type_name}")
            elements = math.prod(shape)
            values = _unpack(raw, *_DTYPES[type_name])
            sparsity = tensor.Sparsity()
            if sparsity is not None:
                positions = sparse_positions(schema, sparsity, shape)
            else:
                positions = np.arange(elements, dtype=np.int64)
            if len(values) < len(positions) or (_DTYPES[type_name][1] >= 8 and len(values) != len(positions)):
                raise ValueError(f"tensor '{tensor.Name().decode()}' stores {len(values)} values, "
                                 f"its shape / sparsity parameters describe {len(positions)}")
            values = values[:len(positions)]
            zero_point, axis = _zero_points(tensor, type_name, len(shape))
            stored_zeros = int(np.count_nonzero(_is_zero(values, type_name, zero_point, positions, shape, axis)))
            zeros = elements - len(positions) + stored_zeros
            layers.append({"name": tensor.Name().decode(errors="replace"), "shape": shape,
                           "elements": int(elements), "zeros": int(zeros),
                           "sparsity": zeros / elements if elements else 0.0,
                           "encoding": "sparse" if sparsity is not None else "dense"})
    except Exception as exc:
        raise InputError(f"{path}: cannot read the weights of this .tflite model ({exc})") from exc
    return layers
