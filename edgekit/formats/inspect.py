"""`edgekit inspect`: everything a deployer asks about a .tflite or .onnx file, read from the file itself.

    from edgekit.formats.inspect import inspect_model
    info = inspect_model("runs/digits/model.tflite", top=5)
    info["quantization"]   # {"kind": "int8 (full integer)", "float_ops": [], ...}
    info["inputs"][0]      # {"name": ..., "shape": [-1, 8, 8, 1], "dtype": "int8", "scale": 0.0039, "zero_point": -128, ...}

The result is a plain JSON-able dict; its fields are documented field by field in
`edgekit/schemas/inspect.schema.json` (JSON Schema 2020-12), which `edgekit inspect --json` follows.

- size, files, params and weight sparsity come from `edgekit.formats.files`; the format-specific part
  from the format's inspector (`Format.inspector`, found by the registry from the suffix):
- inputs / outputs, op histogram, float ops, largest tensors and signatures from
  `edgekit.formats.tflite.inspect` (the flatbuffer schema shipped with ai-edge-litert; see that module for
  why this schema rather than the `tflite` PyPI package) and `edgekit.formats.onnx.inspect` (the protobuf);
- the GPU-delegate verdict (.tflite, `gpu_check=True`; `Format.gpu_check`) from TensorFlow Lite's own
  analyzer (`edgekit.formats.tflite.gpu`), through
  `edgekit.backends.keras.analyzer`, the only place allowed to import TensorFlow; it is skipped
  with a reason when TensorFlow is not installed. Importing TensorFlow takes seconds, which is why
  it is opt-in here and `--no-gpu-check` turns it off on the command line.

No interpreter or session is created for .tflite files, so a file whose ops the runtime lacks can
still be inspected; a file that is not a model raises InputError naming it (exit code 2).
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import InputError
from edgekit.formats import files as modelfile
from edgekit.formats.base import load
from edgekit.formats.registry import FORMATS, find_format, get_format

SCHEMA_VERSION = 1


def gpu_delegate(path: Path, fmt: str, ops: dict, gpu_check: bool) -> dict:
    """{"available": False, "reason"} or {"available": True, "compatible", "warnings", "report", ...},
    from the format's GPU check (`Format.gpu_check`) where it has one."""
    check = get_format(fmt).gpu_check
    if not check:
        having = " or ".join(f.suffix for f in FORMATS.values() if f.gpu_check)
        return {"available": False, "reason": f"the GPU delegate check applies to {having} files only"}
    return load(check)(path, ops, gpu_check)


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
    fmt = find_format(p)
    if fmt is None:
        known = " or ".join(f.suffix for f in FORMATS.values())
        raise InputError(f"{p}: cannot inspect a '{p.suffix}' file (expected {known})")
    details = load(fmt.inspector)(p, top=int(top))
    size = modelfile.file_size(p)
    result = {
        "schema_version": SCHEMA_VERSION,
        "file": str(p),
        "format": fmt.name,
        "bytes": size["bytes"],
        "gzip_bytes": size["gzip_bytes"],
        "files": size["files"],
        "params": modelfile.param_count(p),
        **details,
        "weight_sparsity": modelfile.weight_sparsity(p),
    }
    result["gpu_delegate"] = gpu_delegate(p, fmt.name, result["ops"], gpu_check)
    return result


def schema() -> dict:
    """The JSON Schema of `inspect_model`'s result (edgekit/schemas/inspect.schema.json, package data)."""
    import json
    from importlib import resources

    return json.loads((resources.files("edgekit") / "schemas" / "inspect.schema.json").read_text(encoding="utf-8"))


__all__ = ["inspect_model", "gpu_delegate", "schema", "SCHEMA_VERSION"]
