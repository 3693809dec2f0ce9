"""Facts stored in a .pte file (`edgekit.formats.pte.program`): the files it needs, its parameter
count, its weight tensors and their zeros. ExecuTorch is imported inside the functions.

A .pte is self-contained (the weights travel inside it as named data), so `model_files` is the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgekit.formats.pte.program import read_program

_NUMPY = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8, "int32": np.int32}


def model_files(path: Path) -> list[Path]:
    """The .pte itself: ExecuTorch programs keep their weights inside the file."""
    read_program(path)  # a file that is no program is an InputError here as for the other formats
    return [Path(path)]


def param_count(path: Path) -> int:
    """Elements of every constant tensor: the XNNPACK subgraphs' weights and biases (their values with
    constant data) plus the constants ExecuTorch's own kernels read. Quantization scales live in the
    values' parameters (or as their per-channel scale buffers), not as tensors, so an int8 .pte counts
    what its float twin counts, as .tflite and .onnx do."""
    return int(sum(math.prod(t.shape) for t in read_program(path).constants()))


def weight_layers(path: Path) -> list[dict]:
    """The weight (filter) of each XNNPACK convolution and fully connected node, rank >= 2, with its
    zeros: exact 0.0 for float weights, the zero point for quantized ones (XNNPACK's symmetric int8
    weights: 0). A weight whose bytes cannot be read (a dtype numpy has no type for) counts no zeros."""
    layers = []
    for _, _, weight in read_program(path).weights():
        elements = math.prod(weight.shape)
        zeros = 0
        kind = _NUMPY.get(weight.dtype)
        if kind is not None and weight.data is not None:
            values = np.frombuffer(weight.data, dtype=kind, count=elements)
            zero = weight.zero_point if isinstance(weight.zero_point, int) else 0
            zeros = int(np.count_nonzero(values == zero))
        if len(weight.shape) >= 2:
            layers.append({"name": weight.name, "shape": weight.shape, "elements": elements, "zeros": zeros,
                           "sparsity": zeros / elements if elements else 0.0, "encoding": "dense"})
    return layers


def is_sparse_encoded(path: Path) -> bool:
    """Always False: ExecuTorch's XNNPACK delegate has no sparse weight encoding."""
    read_program(path)
    return False
