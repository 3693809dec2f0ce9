"""Keras -> .tflite with TensorFlow's TFLite converter, quantized as the artifact's precision plan says.

`PLANS` is the realization table: plan class -> how the converter is set up for it (None: float32).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgekit.backends.keras.compat import tf
from edgekit.errors import StageError
from edgekit.formats.tflite import FORMAT
from edgekit.precision import Dynamic, Float16, Int8, Plan
from edgekit.quiet import native_stderr_silenced

_IO_TYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


def _representative(calibration: np.ndarray):
    def samples():
        for i in range(len(calibration)):
            yield [calibration[i:i + 1].astype(np.float32)]

    return samples


def _float32(converter, plan, calibration: Optional[np.ndarray]) -> None:
    """No quantization: the converter's defaults."""


def _dynamic(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _float16(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _int8(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    """Full integer, calibrated on `calibration` (a QAT model's trained ranges take precedence)."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is None or not len(calibration):
        raise StageError("export", "int8 quantization needs calibration samples (data.calibration_samples)")
    converter.representative_dataset = _representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = _IO_TYPES[plan.io]
    converter.inference_output_type = _IO_TYPES[plan.io]
    if not plan.per_channel:
        converter._experimental_disable_per_channel = True


#: plan class (None: float32) -> converter set-up realizing it
PLANS: dict[Optional[type[Plan]], Callable[..., None]] = {
    None: _float32, Int8: _int8, Dynamic: _dynamic, Float16: _float16,
}


def to_tflite(model, path: Path, plan: Optional[Plan] = None, calibration: Optional[np.ndarray] = None,
              sparse: bool = False) -> Path:
    """Convert with a named `serving_default` signature and write `path`.

    `sparse` asks the converter to store pruned weights in TFLite's sparse encoding; whether the
    runtime can run the result is checked by the caller, which runs it."""
    FORMAT.check_plan("keras", plan)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    PLANS[type(plan) if plan is not None else None](converter, plan, calibration)
    if sparse:  # added to what the plan set: alone it keeps a float model float
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        with native_stderr_silenced():
            content = converter.convert()
    except Exception as exc:  # the converter raises many types; the message is what matters
        raise StageError("export", f"TFLite conversion of '{model.name}' failed: {str(exc).strip()[:600]}") from exc
    Path(path).write_bytes(content)
    return Path(path)


def write(artifact, path: Path, calibration: Optional[np.ndarray] = None, sparse: bool = False,
          channels_last: bool = False) -> Path:
    """The Keras writer of .tflite files. Keras models are channels-last already: `channels_last`
    changes nothing."""
    return to_tflite(artifact.model, path, artifact.plan, calibration, sparse)
