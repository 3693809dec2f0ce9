"""Quantize a float .onnx with ONNX Runtime, following the precision plan (`PLANS`, by plan class).

- int8: static QDQ quantization (int8 weights and activations), calibrated with MinMax on the same
  calibration samples the .tflite used, per-channel weights unless `per_channel: false`.
- dynamic: int8 weights, activations quantized at run time (`quantize_dynamic`).
- float16: weights and compute in float16, float32 inputs and outputs kept.

The model keeps float32 inputs and outputs in every case (QDQ), which ONNX Runtime users expect;
`io:` applies to the .tflite only, and the model card says so.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.errors import StageError
from edgekit.precision import Dynamic, Float16, Int8, Plan
from edgekit.quiet import native_stderr_silenced


class _Calibration:
    """ONNX Runtime's CalibrationDataReader over a numpy array, one sample at a time."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self._feeds = iter([{input_name: samples[i:i + 1].astype(np.float32)} for i in range(len(samples))])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # required by newer ORT readers; calibration reads the data once
        pass


def _input_name(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def _int8(source: Path, target: Path, plan, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        except Exception:  # pre-processing only optimises; quantize the original when it cannot run
            shutil.copyfile(source, prepared)
        quantize_static(
            str(prepared), str(target), _Calibration(_input_name(source), calibration),
            quant_format=QuantFormat.QDQ, per_channel=plan.per_channel,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


def _dynamic(source: Path, target: Path, plan, calibration: np.ndarray) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=plan.per_channel)


def _float16(source: Path, target: Path, plan, calibration: np.ndarray) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


#: plan class -> ONNX Runtime quantization realizing it (the same for every framework's float file)
PLANS: dict[type[Plan], Callable[[Path, Path, Plan, np.ndarray], None]] = {
    Int8: _int8, Dynamic: _dynamic, Float16: _float16,
}


def quantize_onnx(source: Path, target: Path, plan, calibration: np.ndarray) -> Path:
    """Write the quantized form of the float model `source` to `target`."""
    try:
        with native_stderr_silenced():
            PLANS[type(plan)](Path(source), Path(target), plan, calibration)
    except StageError:
        raise
    except Exception as exc:
        raise StageError("export", f"ONNX Runtime {plan.precision} quantization of {Path(source).name} "
                                   f"failed: {str(exc).strip()[:600]}") from exc
    return Path(target)
