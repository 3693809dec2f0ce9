"""How the activation ranges of an .onnx plan are calibrated: ONNX Runtime's calibrators.

`minmax` is `quantize_static`'s MinMax calibration. `percentile` and `entropy` run ONNX Runtime's
Percentile / Entropy calibrator with the histogram settings of `edgekit.precision.HISTOGRAM` (which
`quantize_static` cannot pass on: it keeps the calibrator's defaults, and the Entropy default of
128 bins for 128 quantized bins can only return the min/max range), save the ranges with ORT's
`save_tensors_data`, and hand them to `quantize_static` as its calibration cache
(`calibration_cache_path`), which it loads instead of calibrating again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.precision import HISTOGRAM, MINMAX

#: the plan's `calibration` -> ONNX Runtime's `CalibrationMethod` member
METHODS = {MINMAX: "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


def label(plan) -> str:
    """How a record names the quantizer and its calibration, e.g. "... quantize_static, Percentile"."""
    return f"static QDQ (ONNX Runtime quantize_static, {METHODS[plan.calibration]})"


def static_arguments(prepared: Path, plan, reader, directory: Path) -> dict:
    """`quantize_static` keyword arguments that calibrate `prepared` as `plan` says, on the samples of
    the calibration data reader `reader`. The ranges are cached in `directory`, where the variants of
    one model (`edgekit.formats.onnx.tuning`) find them: the Entropy search takes seconds a tensor."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    method = CalibrationMethod[METHODS[plan.calibration]]
    if plan.calibration == MINMAX:
        return {"calibrate_method": method}
    cache = Path(directory) / f"{plan.calibration}-ranges.json"
    if not cache.exists():
        with tempfile.TemporaryDirectory(prefix="edgekit-calibrate-") as tmp:
            calibrator = create_calibrator(Path(prepared), None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                           calibrate_method=method, extra_options=dict(HISTOGRAM[plan.calibration]))
            calibrator.collect_data(reader)
            save_tensors_data(calibrator.compute_data(), cache)
    return {"calibrate_method": method, "calibration_cache_path": str(cache)}
