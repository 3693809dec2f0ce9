"""Training Keras models: the teacher from `teacher.train` and the fine-tuning of every stage.

Classification models train with sparse categorical cross-entropy on their logits (or on their
probabilities, for loaded models that end in a softmax); regression models with mean squared error.
`fit` trains a clone: the model passed in is never changed. Stages that wrap a model (TF-MOT) clone
first and then call `compile_and_fit` on the wrapper they own.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import numpy as np

from edgekit.backends.keras.compat import keras, tf
from edgekit.compute import CPU, Compute

_COMPUTE: contextvars.ContextVar[Compute] = contextvars.ContextVar("edgekit_compute", default=CPU)


def gpus() -> int:
    """How many GPUs this framework sees."""
    return len(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def computing(compute: Compute) -> Iterator[None]:
    """Train on `compute` (device and precision) within the block (`Backend.computing`)."""
    token = _COMPUTE.set(compute)
    try:
        yield
    finally:
        _COMPUTE.reset(token)


def current() -> Compute:
    """The compute the training functions use now (float32 on the CPU outside `computing`)."""
    return _COMPUTE.get()


class ProgressCallback(keras.callbacks.Callback):
    """Advances a progress bar once per epoch, showing loss and accuracy."""

    SHOWN = ("loss", "accuracy", "val_accuracy", "mae", "val_mae")

    def __init__(self, advance):
        super().__init__()
        self._advance = advance

    def on_epoch_end(self, epoch, logs=None):
        self._advance(1, **{k: float(v) for k, v in (logs or {}).items() if k in self.SHOWN})


def clone(model):
    """An independent copy with the same weights (layers are not shared with `model`)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def ends_with_softmax(model) -> bool:
    """True when the model outputs probabilities (a final softmax) rather than logits."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return isinstance(last, keras.layers.Softmax) or getattr(activation, "__name__", "") == "softmax"


def loss_and_metrics(task: str, model=None):
    if task == "classification":
        from_logits = model is None or not ends_with_softmax(model)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), ["accuracy"]
    return keras.losses.MeanSquaredError(), ["mae"]


def compile_and_fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None,
                    description="train", callbacks=(), loss=None):
    """Compile `model` with Adam and train it in place on the train split; returns the history."""
    keras.utils.set_random_seed(seed)
    default_loss, metrics = loss_and_metrics(dataset.task, model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss or default_loss, metrics=metrics)
    validation = (dataset.x_val, dataset.y_val) if len(dataset.x_val) else None
    kwargs = dict(epochs=epochs, batch_size=batch_size, validation_data=validation, verbose=0, shuffle=True)
    if progress is None:
        return model.fit(dataset.x_train, dataset.y_train, callbacks=list(callbacks), **kwargs)
    with progress(description, epochs) as advance:
        return model.fit(dataset.x_train, dataset.y_train,
                         callbacks=[*callbacks, ProgressCallback(advance)], **kwargs)


def fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train"):
    """Train a copy of `model` on the dataset's train split, validating on its validation split."""
    trained = clone(model)
    compile_and_fit(trained, dataset, epochs, batch_size, learning_rate, seed, progress, description)
    return trained


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Float outputs, batch by batch, without Keras' own progress printing."""
    outputs = [np.asarray(model(tf.convert_to_tensor(x[i:i + batch_size]), training=False))
               for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs, axis=0).astype(np.float32) if outputs else np.zeros((0,), np.float32)


def steps_per_epoch(dataset, batch_size: int) -> int:
    return max(1, int(np.ceil(len(dataset.x_train) / batch_size)))
