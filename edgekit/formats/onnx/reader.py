"""Facts stored in an .onnx file, read with `onnx` (protobuf only, no runtime; imported inside the
functions): the files it needs, its parameter count, its weight tensors and their zeros.

External data (weights above protobuf's limit, in `<name>.onnx.data`) travels with the model, so it is
part of `model_files` and of the size gates.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

# ONNX ops whose inputs 1 and 2 are quantization parameters, not weights.
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def _load_onnx(path: Path):
    """The ModelProto without its external data (cheap); InputError when the file is not ONNX."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(f"{path}: not a valid .onnx model ({type(exc).__name__}: {exc})") from exc


def _graphs(graph):
    """A graph and every subgraph nested in its nodes' attributes (If / Loop / Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def _onnx_tensors(model):
    """(tensor, is_quant_param) for every initializer and Constant-node tensor in the model."""
    for graph in _graphs(model.graph):
        qparams = {name for node in graph.node if node.op_type in _QDQ_OPS for name in node.input[1:3]}
        for tensor in graph.initializer:
            yield tensor, tensor.name in qparams
        for node in graph.node:
            if node.op_type != "Constant":
                continue
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t, any(o in qparams for o in node.output)


def _external_locations(model) -> list[str]:
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    seen: dict[str, None] = {}
    for tensor, _ in _onnx_tensors(model):
        if uses_external_data(tensor):
            seen.setdefault(ExternalDataInfo(tensor).location, None)
    return list(seen)


def param_count(path: Path) -> int:
    """Elements of all initializers and Constant tensors, minus QDQ scales / zero points.

    Quantization parameters are left out so that an int8 QDQ .onnx and its int8 .tflite (which keeps
    them in tensor metadata, not in buffers) report comparable counts.
    """
    model = _load_onnx(path)
    total = 0
    for tensor, is_qparam in _onnx_tensors(model):
        if not is_qparam:
            total += math.prod(tensor.dims)
    for graph in _graphs(model.graph):
        for sparse in graph.sparse_initializer:  # counted at their dense size, like .tflite sparse tensors
            total += math.prod(sparse.dims)
    return int(total)


# Weight-consuming ONNX ops: op -> (index of the weight input, index of its zero point or None).
_ONNX_WEIGHT_INPUTS = {
    "Conv": (1, None), "ConvTranspose": (1, None), "Gemm": (1, None), "MatMul": (1, None),
    "ConvInteger": (1, 3), "MatMulInteger": (1, 3), "QLinearConv": (3, 5), "QLinearMatMul": (3, 5),
}
# Per-channel zero points of those ops run along this weight axis (QLinearConv: output channels).
_ONNX_ZERO_POINT_AXIS = {"ConvInteger": 0, "QLinearConv": 0, "MatMulInteger": -1, "QLinearMatMul": -1}


def _onnx_stored_tensors(model):
    """({name: dense TensorProto}, {name: SparseTensorProto}, {output name: producing node}), all graphs."""
    constants, sparse, producer = {}, {}, {}
    for graph in _graphs(model.graph):
        constants.update((tensor.name, tensor) for tensor in graph.initializer)
        sparse.update((tensor.values.name, tensor) for tensor in graph.sparse_initializer)
        for node in graph.node:
            producer.update((out, node) for out in node.output)
            if node.op_type == "Constant":
                constants.update((node.output[0], attr.t) for attr in node.attribute if attr.HasField("t"))
    return constants, sparse, producer


def _onnx_weight_sources(model):
    """(stored weight name, zero point name or "", zero point axis, block size) per weight input, once each.

    The weight input is followed back through DequantizeLinear (which then supplies the zero point,
    its `axis` and `block_size`) and Identity nodes to the initializer / Constant that stores it.
    """
    constants, sparse, producer = _onnx_stored_tensors(model)
    seen = set()
    for graph in _graphs(model.graph):
        for node in graph.node:
            w_index, zp_index = _ONNX_WEIGHT_INPUTS.get(node.op_type, (None, None))
            if w_index is None or len(node.input) <= w_index:
                continue
            name = node.input[w_index]
            zp_name = node.input[zp_index] if zp_index is not None and len(node.input) > zp_index else ""
            axis, block = _ONNX_ZERO_POINT_AXIS.get(node.op_type, 0), 0
            for _ in range(8):
                source = producer.get(name)
                if name in constants or name in sparse or source is None:
                    break
                if source.op_type == "DequantizeLinear":
                    attrs = {a.name: a.i for a in source.attribute}
                    zp_name = source.input[2] if len(source.input) > 2 else ""
                    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
                elif source.op_type != "Identity":
                    break
                name = source.input[0]
            if name not in seen and (name in constants or name in sparse):
                seen.add(name)
                yield name, zp_name, axis, block


def weight_layers(path: Path) -> list[dict]:
    """Stored weights of rank >= 2 at the weight input of Conv / Gemm / MatMul (and their integer forms).

    A weight reached through DequantizeLinear (QDQ models) is counted on the stored integer tensor:
    its zeros are the elements equal to the zero point (per channel along `axis`, or per block with
    `block_size`; no zero point means 0). Float weights count exact 0.0. A sparse initializer counts
    at its dense shape, the entries it does not store being zeros. ORT-internal forms such as
    MatMulNBits are not recognised.
    """
    from onnx import numpy_helper

    model = _load_onnx(path)
    constants, sparse, _ = _onnx_stored_tensors(model)
    layers = []
    try:
        for name, zp_name, axis, block in _onnx_weight_sources(model):
            if name in sparse:
                shape = [int(d) for d in sparse[name].dims]
                values = numpy_helper.to_array(sparse[name].values, base_dir=str(path.parent))
                elements = math.prod(shape)
                zeros = elements - int(np.count_nonzero(values))
            else:
                values = numpy_helper.to_array(constants[name], base_dir=str(path.parent))
                shape, elements = list(values.shape), int(values.size)
                zero_point = np.zeros(1, values.dtype)
                if zp_name in constants:
                    zero_point = numpy_helper.to_array(constants[zp_name], base_dir=str(path.parent))
                if zero_point.size > 1 and zero_point.ndim == values.ndim and block:  # blocked quantization
                    zero_point = np.repeat(zero_point, block, axis=axis)[tuple(slice(0, n) for n in shape)]
                elif zero_point.size > 1:  # per channel along `axis`
                    view = [1] * len(shape)
                    view[axis] = -1
                    zero_point = zero_point.reshape(view)
                zeros = int(np.count_nonzero(values == zero_point))
            if len(shape) >= 2:
                layers.append({"name": name, "shape": shape, "elements": elements, "zeros": zeros,
                               "sparsity": zeros / elements if elements else 0.0,
                               "encoding": "sparse" if name in sparse else "dense"})
    except Exception as exc:  # missing external data, a zero point that does not fit its tensor, ...
        raise InputError(f"{path}: cannot read the weights of this .onnx model ({exc})") from exc
    return layers


def model_files(path: Path) -> list[Path]:
    """The .onnx file and the external-data files its weights are stored in."""
    files = [path]
    for location in _external_locations(_load_onnx(path)):
        data = path.parent / location
        if not data.is_file():
            raise InputError(f"{path}: its weights are stored in the external file '{location}', "
                             f"which is missing next to it ({data}); copy it alongside the model")
        if data not in files:
            files.append(data)
    return files


def is_sparse_encoded(path: Path) -> bool:
    """True when a graph stores a sparse_initializer."""
    return any(len(graph.sparse_initializer) for graph in _graphs(_load_onnx(path).graph))


_NAMES = {"FLOAT": "float32", "DOUBLE": "float64", "FLOAT16": "float16"}


def _type_name(elem_type: int) -> str:
    from onnx import TensorProto

    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return str(elem_type)


def dtype_name(elem_type: int) -> str:
    """ONNX element type -> numpy-style name ("FLOAT" -> "float32", "INT8" -> "int8")."""
    name = _type_name(elem_type)
    return _NAMES.get(name, name.lower())
