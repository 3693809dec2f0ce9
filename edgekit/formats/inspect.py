"""`edgekit inspect`: everything a deployer asks about a .tflite or .onnx file, read from the file itself.

    from edgekit.formats.inspect import inspect_model
    info = inspect_model("runs/digits/model.tflite", top=5)
    info["quantization"]   # {"kind": "int8 (full integer)", "float_ops": [], ...}
    info["inputs"][0]      # {"name": ..., "shape": [-1, 8, 8, 1], "dtype": "int8", "scale": 0.0039, "zero_point": -128, ...}

The result is a plain JSON-able dict; its fields are documented field by field in
`edgekit/schemas/inspect.schema.json` (JSON Schema 2020-12), which `edgekit inspect --json` follows.

- size, files, params and weight sparsity come from `edgekit.formats.files`;
- inputs / outputs, op histogram, float ops, largest tensors and signatures from
  `edgekit.formats.tflite.inspect` (the flatbuffer schema shipped with ai-edge-litert; see that module for
  why this schema rather than the `tflite` PyPI package) and `edgekit.formats.onnx.inspect` (the protobuf);
- the GPU-delegate verdict (.tflite, `gpu_check=True`) from TensorFlow Lite's own analyzer, through
  `edgekit.backends.keras.analyzer`, the only place allowed to import TensorFlow; it is skipped
  with a reason when TensorFlow is not installed. Importing TensorFlow takes seconds, which is why
  it is opt-in here and `--no-gpu-check` turns it off on the command line.

No interpreter or session is created for .tflite files, so a file whose ops the runtime lacks can
still be inspected; a file that is not a model raises InputError naming it (exit code 2).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgekit.formats import files as modelfile
from edgekit.errors import InputError

SCHEMA_VERSION = 1
# Custom ops the TFLite GPU delegate implements (tensorflow/lite/delegates/gpu/common/custom_parsers).
_GPU_CUSTOM_OPS = {"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"}


def _reader(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from edgekit.formats.tflite.inspect import read_tflite
        return "tflite", read_tflite
    if suffix == ".onnx":
        from edgekit.formats.onnx.inspect import read_onnx
        return "onnx", read_onnx
    raise InputError(f"{path}: cannot inspect a '{path.suffix}' file (expected .tflite or .onnx)")


def gpu_delegate(path: Path, fmt: str, ops: dict, gpu_check: bool) -> dict:
    """{"available": False, "reason"} or {"available": True, "compatible", "warnings", "report", ...}."""
    if fmt != "tflite":
        return {"available": False, "reason": "the GPU delegate check applies to .tflite files only"}
    if not gpu_check:
        return {"available": False, "reason": "not checked (--no-gpu-check)"}
    if importlib.util.find_spec("tensorflow") is None:
        return {"available": False, "reason": "TensorFlow is not installed"}
    try:
        from edgekit.backends.keras.analyzer import gpu_compatibility

        result = gpu_compatibility(path)
    except Exception as exc:  # the analyzer is experimental: report its failure, keep the rest
        return {"available": False, "reason": f"TensorFlow's model analyzer failed: {type(exc).__name__}: {exc}"}
    from edgekit.formats.tflite.inspect import custom_ops

    custom = [op for op in custom_ops(ops) if op not in _GPU_CUSTOM_OPS]
    entry = {"available": True, **result, "note": None}
    if result["compatible"] and custom:
        entry["note"] = (f"the analyzer of TensorFlow {result['tensorflow']} reports this model compatible, but it "
                         f"contains custom ops the GPU delegate cannot run ({', '.join(custom)}); this "
                         "TensorFlow build's GPU check appears to be inactive")
    return entry


def inspect_model(path: str | Path, top: int = 10, gpu_check: bool = False) -> dict:
    """Describe the model file at `path` (.tflite or .onnx); see the module docstring and the schema.

    `top` caps `tensors_by_size`; `gpu_check=True` runs TensorFlow Lite's GPU analyzer (.tflite only,
    seconds: it imports TensorFlow).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: model file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a file (expected a .tflite or .onnx model)")
    fmt, read = _reader(p)
    details = read(p, top=int(top))
    size = modelfile.file_size(p)
    result = {
        "schema_version": SCHEMA_VERSION,
        "file": str(p),
        "format": fmt,
        "bytes": size["bytes"],
        "gzip_bytes": size["gzip_bytes"],
        "files": size["files"],
        "params": modelfile.param_count(p),
        **details,
        "weight_sparsity": modelfile.weight_sparsity(p),
    }
    result["gpu_delegate"] = gpu_delegate(p, fmt, result["ops"], gpu_check)
    return result


def schema() -> dict:
    """The JSON Schema of `inspect_model`'s result (edgekit/schemas/inspect.schema.json, package data)."""
    import json
    from importlib import resources

    return json.loads((resources.files("edgekit") / "schemas" / "inspect.schema.json").read_text(encoding="utf-8"))


__all__ = ["inspect_model", "gpu_delegate", "schema", "SCHEMA_VERSION"]
