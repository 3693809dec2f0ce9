"""Facts about a model FILE on disk, independent of any runtime: which files ship, their size, params.

    model_files("model.onnx")       # [model.onnx, model.onnx.data]  (external weights travel with it)
    file_size("model.tflite")       # {"bytes": 23456, "gzip_bytes": 9876, "files": ["model.tflite"]}
    param_count("model.tflite")     # 12345 weight elements stored in the file
    weight_sparsity("model.tflite") # {"layers": [...], "elements": 12288, "zeros": 9216, "sparsity": 0.75}
    is_sparse_encoded("model.tflite")  # True when tensors are stored in TFLite's sparse format

Size gates (DESIGN.md) count everything that must be shipped, so an .onnx file's external-data files
are part of its size. gzip size shows what pruning really saves: zeros compress, a sparse-but-dense
tensor does not shrink on disk. `weight_sparsity` shows whether pruning survived conversion.

What a file stores is read by its format's reader (`Format.reader`: `edgekit.formats.tflite.reader`,
`edgekit.formats.onnx.reader`), chosen by the registry from the file's suffix.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from edgekit.errors import InputError
from edgekit.formats.registry import find_format, reader_for_path


def _existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: model file not found" if not p.exists() else f"{p}: not a file")
    return p


def model_files(path: str | Path) -> list[Path]:
    """The model file plus every file it needs at run time (an .onnx file's external data).

    >>> model_files("runs/x/model.onnx")   # doctest: +SKIP
    [PosixPath('runs/x/model.onnx'), PosixPath('runs/x/model.onnx.data')]
    """
    p = _existing(path)
    if find_format(p) is None:
        return [p]
    return reader_for_path(p, "cannot read").model_files(p)


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
    """Number of weight elements stored in a .tflite or .onnx file (see the format readers)."""
    p = _existing(path)
    return reader_for_path(p, "cannot count parameters of").param_count(p)


def weight_sparsity(path: str | Path) -> dict:
    """Fraction of zero weights in the conv / dense / matmul weight tensors stored in the file.

    {"layers": [{"name", "shape", "elements", "zeros", "sparsity", "encoding": "dense"|"sparse"}, ...],
     "elements": n, "zeros": z, "sparsity": z / n}

    Only weights are counted (biases, shapes and other constants are not): see the readers'
    `weight_layers` for which tensors and what counts as zero (0.0, or the zero point of a quantized
    tensor). A sparse-encoded tensor reports its dense shape; the entries it does not store are zeros.
    """
    p = _existing(path)
    layers = reader_for_path(p, "cannot read the weights of").weight_layers(p)
    elements = sum(layer["elements"] for layer in layers)
    zeros = sum(layer["zeros"] for layer in layers)
    return {"layers": layers, "elements": elements, "zeros": zeros,
            "sparsity": zeros / elements if elements else 0.0}


def is_sparse_encoded(path: str | Path) -> bool:
    """True when the file stores a tensor in a sparse format (.tflite sparsity, ONNX sparse_initializer)."""
    p = _existing(path)
    return reader_for_path(p, "cannot inspect").is_sparse_encoded(p)
