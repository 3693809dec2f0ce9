"""Keras -> .tflite (TFLite converter, with the recipe's quantization) and -> .onnx (tf2onnx, float).

The .onnx is always written in float here; `edgekit.formats.onnx.quantize` applies the same quantization
plan to it with ONNX Runtime, so both shipped files carry int8 weights and activations.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.errors import StageError
from edgekit.quiet import native_stderr_silenced
from edgekit.backends.keras.compat import tf

ONNX_OPSET = 17
INPUT_NAME = "input"
_IO_TYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


def _representative(calibration: np.ndarray):
    def samples():
        for i in range(len(calibration)):
            yield [calibration[i:i + 1].astype(np.float32)]

    return samples


def _configure_quantization(converter, plan, calibration: Optional[np.ndarray]) -> None:
    """Set the converter up for `plan` (a QuantizeConfig): int8 full integer, dynamic or float16."""
    if plan is None:
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if plan.precision == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif plan.precision == "int8":
        if calibration is None or not len(calibration):
            raise StageError("export", "int8 quantization needs calibration samples (data.calibration_samples)")
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = _IO_TYPES[plan.io]
        converter.inference_output_type = _IO_TYPES[plan.io]
        if not plan.per_channel:
            converter._experimental_disable_per_channel = True


def to_tflite(model, path: Path, plan=None, calibration: Optional[np.ndarray] = None, sparse: bool = False) -> Path:
    """Convert with a named `serving_default` signature and write `path`.

    `sparse` asks the converter to store pruned weights in TFLite's sparse encoding; whether the
    runtime can run the result is checked by the caller, which runs it."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    _configure_quantization(converter, plan, calibration)
    if sparse:  # added to what the plan set: alone it keeps a float model float
        converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    try:
        with native_stderr_silenced():
            content = converter.convert()
    except Exception as exc:  # the converter raises many types; the message is what matters
        raise StageError("export", f"TFLite conversion of '{model.name}' failed: {str(exc).strip()[:600]}") from exc
    Path(path).write_bytes(content)
    return Path(path)


def is_quantization_aware(model) -> bool:
    """True for a TF-MOT QAT model (its layers are QuantizeWrapper / QuantizeLayer)."""
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


def to_onnx(model, path: Path, plan=None, calibration: Optional[np.ndarray] = None, sparse: bool = False) -> Path:
    """tf2onnx conversion with a dynamic batch dimension and the input named `input`.

    A float model gives a float file, which edgekit.formats.onnx.quantize then quantizes with ONNX Runtime.
    A quantization-aware model is first converted to a full-integer .tflite with float32 inputs and
    outputs, which tf2onnx turns into QDQ ONNX with int8 weights: the .onnx then carries exactly the
    trained quantization of the .tflite (tf2onnx on the Keras graph would fold the fake-quantized
    weights back into float32 initializers, four times larger). `sparse` does not apply to ONNX."""
    import tf2onnx

    try:
        with native_stderr_silenced():
            if is_quantization_aware(model):
                with tempfile.TemporaryDirectory(prefix="edgekit-qat-") as tmp:
                    float_io = plan.with_io("float32")
                    tflite = to_tflite(model, Path(tmp) / "qat.tflite", float_io, calibration)
                    tf2onnx.convert.from_tflite(str(tflite), opset=ONNX_OPSET, output_path=str(path))
            else:
                spec = [tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
                tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET, output_path=str(path))
    except StageError:
        raise
    except Exception as exc:
        raise StageError("export", f"ONNX conversion of '{model.name}' (tf2onnx) failed: {str(exc).strip()[:600]}") from exc
    return Path(path)


WRITERS = {"tflite": to_tflite, "onnx": to_onnx}
