"""Keras -> .tflite with TensorFlow's TFLite converter, quantized as the artifact's precision plan says
(the converter set-up per plan is `edgekit.formats.tflite.plans.KERAS`). Recurrent models are traced
with a fixed batch of 1 (`edgekit.formats.tflite.recurrent`, which says why); all others keep the
dynamic batch of `from_keras_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.backends.keras.compat import tf
from edgekit.errors import StageError
from edgekit.formats.tflite import FORMAT
from edgekit.formats.tflite import recurrent
from edgekit.formats.tflite.plans import KERAS
from edgekit.precision import Int8, Plan
from edgekit.quiet import native_stderr_silenced

def to_tflite(model, path: Path, plan: Optional[Plan] = None, calibration: Optional[np.ndarray] = None,
              sparse: bool = False) -> Path:
    """Convert with a named `serving_default` signature and write `path`.

    `sparse` asks the converter to store pruned weights in TFLite's sparse encoding; whether the
    runtime can run the result is checked by the caller, which runs it."""
    FORMAT.check_plan("keras", plan)
    rnn = recurrent.is_recurrent(model)
    try:
        if rnn:  # tracing (and unrolling) a recurrent model can fail like the conversion itself
            converter = recurrent.converter(model, unroll=isinstance(plan, Int8))
        else:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        KERAS[type(plan) if plan is not None else None](converter, plan, calibration)
        if rnn:
            recurrent.adjust(converter, plan)
        if sparse:  # added to what the plan set: alone it keeps a float model float
            converter.optimizations = [*converter.optimizations, tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        with native_stderr_silenced():
            content = converter.convert()
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
