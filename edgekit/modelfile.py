"""Facts about a model FILE on disk, independent of any runtime: which files ship, their size, params.

    model_files("model.onnx")   # [model.onnx, model.onnx.data]  (external weights travel with it)
    file_size("model.tflite")   # {"bytes": 23456, "gzip_bytes": 9876, "files": ["model.tflite"]}
    param_count("model.tflite") # 12345 weight elements stored in the file

Size gates (DESIGN.md) count everything that must be shipped, so an .onnx file's external-data files
are part of its size. gzip size shows what pruning really saves: zeros compress, a sparse-but-dense
tensor does not shrink on disk.

Parsing uses `onnx` (protobuf only, no runtime) and, for .tflite, the flatbuffer schema classes that
ship with ai-edge-litert (see `_tflite_param_count`); both are imported inside the functions.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

from edgekit.errors import InputError

# ONNX ops whose inputs 1 and 2 are quantization parameters, not weights.
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: model file not found" if not p.exists() else f"{p}: not a file")
    return p


# ---- ONNX ------------------------------------------------------------------------------------

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


def _onnx_param_count(path: Path) -> int:
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


# ---- TFLite ----------------------------------------------------------------------------------

def _tflite_param_count(path: Path) -> int:
    """Elements of the constant tensors (those whose buffer holds data) of subgraph 0.

    The file is read with `ai_edge_litert.schema_py_generated`, the flatc-generated reader of the
    .tflite schema that ships inside ai-edge-litert: it parses the flatbuffer directly, needs neither
    TensorFlow (`tf.lite` would import all of TF, seconds and gigabytes) nor an interpreter (which
    would have to allocate and could fail on ops it lacks), and matches the runtime edgekit measures
    with. A tensor holds data when its buffer index is > 0 and the buffer has inline bytes, or an
    offset/size into the file's tail (models over 2 GB), or when it names an external buffer.
    Variable tensors (e.g. LSTM state) are not weights and are skipped; a buffer shared by several
    tensors counts once; sparse tensors count at their dense shape.
    """
    from ai_edge_litert import schema_py_generated as schema

    buf = path.read_bytes()
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise InputError(f"{path}: not a valid .tflite model (no 'TFL3' flatbuffer identifier)")
    try:
        model = schema.Model.GetRootAs(buf, 0)
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
            total += math.prod(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
        return int(total)
    except InputError:
        raise
    except Exception as exc:  # flatbuffers raises struct / index errors on a mangled file
        raise InputError(f"{path}: not a valid .tflite model (cannot parse the flatbuffer: {exc})") from exc


_PARAM_COUNTERS = {".onnx": _onnx_param_count, ".tflite": _tflite_param_count}


# ---- public API ------------------------------------------------------------------------------

def model_files(path: str | Path) -> list[Path]:
    """The model file plus every file it needs at run time (an .onnx file's external data).

    >>> model_files("runs/x/model.onnx")   # doctest: +SKIP
    [PosixPath('runs/x/model.onnx'), PosixPath('runs/x/model.onnx.data')]
    """
    p = _existing(path)
    if p.suffix.lower() != ".onnx":
        return [p]
    files = [p]
    for location in _external_locations(_load_onnx(p)):
        data = p.parent / location
        if not data.is_file():
            raise InputError(f"{p}: its weights are stored in the external file '{location}', "
                             f"which is missing next to it ({data}); copy it alongside the model")
        if data not in files:
            files.append(data)
    return files


def file_size(path: str | Path) -> dict:
    """Total bytes and gzip -9 bytes of the model and the files it needs, and their names."""
    files = model_files(path)
    raw = gz = 0
    for f in files:
        content = f.read_bytes()
        raw += len(content)
        gz += len(gzip.compress(content, compresslevel=9))
    return {"bytes": raw, "gzip_bytes": gz, "files": [f.name for f in files]}


def param_count(path: str | Path) -> int:
    """Number of weight elements stored in a .tflite or .onnx file (see the per-format helpers)."""
    p = _existing(path)
    counter = _PARAM_COUNTERS.get(p.suffix.lower())
    if counter is None:
        raise InputError(f"{p}: cannot count parameters of a '{p.suffix}' file (expected .tflite or .onnx)")
    return counter(p)
