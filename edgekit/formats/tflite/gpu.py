"""The GPU-delegate verdict on a .tflite file, from TensorFlow Lite's own analyzer.

The analyzer lives in `edgekit.backends.keras.analyzer`, the only place allowed to import TensorFlow;
the check is skipped with a reason when TensorFlow is not installed (importing it takes seconds, which
is why `edgekit inspect` makes the check opt-in).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Custom ops the TFLite GPU delegate implements (tensorflow/lite/delegates/gpu/common/custom_parsers).
_GPU_CUSTOM_OPS = {"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"}


def gpu_delegate(path: Path, ops: dict, gpu_check: bool) -> dict:
    """{"available": False, "reason"} or {"available": True, "compatible", "warnings", "report", ...}."""
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
