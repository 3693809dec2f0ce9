"""The one place that imports TensorFlow, tf_keras and TF-MOT.

TF-MOT needs Keras 2, so `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is imported and every
Keras call goes through `keras` from here (tf_keras), never `tf.keras` or Keras 3. The import is
wrapped so TensorFlow's native CUDA/oneDNN/absl banner never reaches the user's terminal.
"""

from __future__ import annotations

from edgekit.quiet import native_stderr_silenced, quiet_environment, quiet_python_loggers

quiet_environment()

with native_stderr_silenced():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)

quiet_python_loggers()


def tfmot():
    """TF-MOT, imported on first use (it is slow to import and only the training stages need it)."""
    with native_stderr_silenced():
        import tensorflow_model_optimization as module
    return module


__all__ = ["tf", "keras", "tfmot"]
