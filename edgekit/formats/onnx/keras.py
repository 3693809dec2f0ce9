"""Keras -> .onnx with tf2onnx, in float; `edgekit.formats.onnx.export` quantizes it with ONNX Runtime.

A quantization-aware model is the exception: it is first converted to a full-integer .tflite with
float32 inputs and outputs, which tf2onnx turns into QDQ ONNX with int8 weights, so the .onnx carries
exactly the trained quantization of the .tflite (tf2onnx on the Keras graph would fold the
fake-quantized weights back into float32 initializers, four times larger). tf2onnx writes the
.tflite's fused activations as a float Relu / Clip before each QuantizeLinear, which keeps ONNX Runtime
from fusing the Conv / Gemm into integer kernels; `edgekit.formats.onnx.qdq_activations` moves them
after the QuantizeLinear as exact integer clamps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.backends.keras.compat import tf
from edgekit.errors import StageError
from edgekit.formats.onnx.qdq_activations import rewrite_file
from edgekit.formats.tflite.keras import to_tflite
from edgekit.quiet import native_stderr_silenced

ONNX_OPSET = 17
INPUT_NAME = "input"


def is_quantization_aware(model) -> bool:
    """True for a TF-MOT QAT model (its layers are QuantizeWrapper / QuantizeLayer)."""
    return any(type(layer).__name__.startswith("Quantize") for layer in model.layers)


_HANDLERS: list = []


def _register_erfc() -> None:
    """Teach tf2onnx TensorFlow's `Erfc` as `1 - Erf(x)` (idempotent).

    Keras' exact GELU (`activation="gelu"`, the Transformer feed-forward's) is `0.5·x·erfc(-x/√2)`;
    tf2onnx has no handler for `Erfc` and writes it as an `Erfc` node, which ONNX does not define,
    so ONNX Runtime refuses the file."""
    if _HANDLERS:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            node.type = "Erf"
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            complement = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{node.name}_1m"))
            ctx.replace_inputs(complement, [one.output[0], node.output[0]])

    _HANDLERS.append(Erfc)


def to_onnx(model, path: Path, plan=None, calibration: Optional[np.ndarray] = None) -> Path:
    """tf2onnx conversion with a dynamic batch dimension and the input named `input` (see the module
    docstring for quantization-aware models)."""
    import tf2onnx

    _register_erfc()
    try:
        with native_stderr_silenced():
            if is_quantization_aware(model):
                with tempfile.TemporaryDirectory(prefix="edgekit-qat-") as tmp:
                    float_io = plan.with_io("float32")
                    tflite = to_tflite(model, Path(tmp) / "qat.tflite", float_io, calibration)
                    tf2onnx.convert.from_tflite(str(tflite), opset=ONNX_OPSET, output_path=str(path))
                rewrite_file(Path(path))
            else:
                spec = [tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32, name=INPUT_NAME)]
                tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET, output_path=str(path))
    except StageError:
        raise
    except Exception as exc:
        raise StageError("export", f"ONNX conversion of '{model.name}' (tf2onnx) failed: {str(exc).strip()[:600]}") from exc
    return Path(path)


def write(artifact, path: Path, calibration: Optional[np.ndarray] = None, sparse: bool = False,
          channels_last: bool = False) -> Path:
    """The Keras writer of .onnx files. `sparse` does not apply to ONNX; Keras models are channels-last."""
    return to_onnx(artifact.model, path, artifact.plan, calibration)
