"""Keras -> .tflite with TensorFlow's TFLite converter, quantized as the artifact's precision plan says
(the converter set-up per plan is `edgekit.formats.tflite.plans.KERAS`). Recurrent models are traced
with a fixed batch of 1 (`edgekit.formats.tflite.recurrent`, which says why); all others keep the
dynamic batch of `from_keras_model`. The int8 file of an attention model has only its weight ops
quantized (`edgekit.formats.tflite.attention`). int16x8 files and files with per-layer overrides
are converted float and quantized by AI Edge Quantizer (`edgekit.formats.tflite.edge`).

Attention models (a Keras `MultiHeadAttention`, `Attention` or `AdditiveAttention` layer at any
depth) are converted with a batch of 1 too, from a clone of the model whose input has
`batch_size=1`: with a dynamic batch, every attention and LayerNorm reshape computes its shape at
run time (SHAPE / GATHER / REDUCE_PROD / PACK / FILL ..., 59 ops in a 2-block encoder), which LiteRT
runs on its builtin kernels between XNNPACK partitions. Measured on a 69k-parameter 2-block encoder
(LiteRT 2.3, 1 thread): float 0.061 -> 0.053 ms, int8 0.045 -> 0.035 ms, int8 bytes 0.37x -> 0.345x
the float file's. A model that cannot be cloned (subclassed) keeps its dynamic batch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.backends.keras.compat import keras, tf
from edgekit.errors import StageError
from edgekit.formats.tflite import FORMAT
from edgekit.formats.tflite import attention, edge, recurrent
from edgekit.formats.tflite.plans import keras_setup
from edgekit.precision import Int8, Plan
from edgekit.quiet import native_stderr_silenced

def _weight_ops_only(converter, plan: Int8, content: bytes) -> bytes:
    """The int8 file of an attention model with only its weight ops quantized, per tensor
    (`edgekit.formats.tflite.attention` says why): the converter calibrates only, then TF's MLIR
    quantizer quantizes with every other op of the full-integer file `content` denylisted."""
    from tensorflow.lite.python import convert

    io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[plan.io]
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    return convert.mlir_quantize(calibrated, disable_per_channel=True, input_data_type=io_type,
                                 output_data_type=io_type, denylisted_ops=attention.float_ops(content))


ATTENTION_LAYERS = ("MultiHeadAttention", "Attention", "AdditiveAttention", "GroupQueryAttention")


def _batch_one(model):
    """A clone of an attention `model` with a batch of 1 (see the module docstring), else `model`."""
    kinds = tuple(getattr(keras.layers, name) for name in ATTENTION_LAYERS if hasattr(keras.layers, name))
    if not any(isinstance(layer, kinds) for layer in model.submodules) or len(model.inputs or []) != 1:
        return model
    try:
        clone = keras.models.clone_model(model, input_tensors=keras.Input(model.inputs[0].shape[1:], batch_size=1,
                                                                          dtype=model.inputs[0].dtype))
        clone.set_weights(model.get_weights())
    except Exception:  # a subclassed model cannot be cloned onto a new input: it keeps its dynamic batch
        return model
    return clone


def to_tflite(model, path: Path, plan: Optional[Plan] = None, calibration: Optional[np.ndarray] = None,
              sparse: bool = False) -> Path:
    """Convert with a named `serving_default` signature and write `path`.

    `sparse` asks the converter to store pruned weights in TFLite's sparse encoding; whether the
    runtime can run the result is checked by the caller, which runs it."""
    FORMAT.check_plan("keras", plan)
    rnn = recurrent.is_recurrent(model)
    try:
        if rnn:  # tracing (and unrolling) a recurrent model can fail like the conversion itself
            converter = recurrent.converter(model, unroll=plan is not None and plan.calibrated)
        else:
            converter = tf.lite.TFLiteConverter.from_keras_model(_batch_one(model))
        by_edge = edge.by_edge_quantizer(plan)
        keras_setup(plan)(converter, plan, calibration)
        if rnn and not by_edge:
            recurrent.adjust(converter, plan, model)
        if sparse:  # added to what the plan set: alone it keeps a float model float
            converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        with native_stderr_silenced():
            content = converter.convert()
            if by_edge:
                content = edge.quantize(content, plan, calibration)
            elif isinstance(plan, Int8) and not plan.quantization_aware and attention.has_attention(content):
                content = _weight_ops_only(converter, plan, content)
    except StageError:
        raise
    except Exception as exc:  # the converter raises many types; the message is what matters
        raise StageError("export", f"TFLite conversion of '{model.name}' failed: {str(exc).strip()[:600]}") from exc
    Path(path).write_bytes(content)
    return Path(path)


def write(artifact, path: Path, calibration: Optional[np.ndarray] = None, sparse: bool = False,
          channels_last: bool = False) -> Path:
    """The Keras writer of .tflite files. Keras models are channels-last already: `channels_last`
    changes nothing."""
    return to_tflite(artifact.model, path, artifact.plan, calibration, sparse)
