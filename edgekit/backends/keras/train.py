"""Training Keras models: the teacher from `teacher.train`, with a progress bar per epoch.

Classification models output logits and train with sparse categorical cross-entropy; regression
models train with mean squared error. The model passed in is cloned first, never trained in place.
"""

from __future__ import annotations

import numpy as np

from .compat import keras, tf


class _ProgressCallback(keras.callbacks.Callback):
    def __init__(self, advance):
        super().__init__()
        self._advance = advance

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = {k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_accuracy", "mae", "val_mae")}
        self._advance(1, **shown)


def clone(model):
    """An independent copy with the same weights (layers are not shared with `model`)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def loss_and_metrics(task: str):
    if task == "classification":
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    return keras.losses.MeanSquaredError(), ["mae"]


def fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train"):
    """Train a copy of `model` on the dataset's train split, validating on its validation split."""
    keras.utils.set_random_seed(seed)
    trained = clone(model)
    loss, metrics = loss_and_metrics(dataset.task)
    trained.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    validation = (dataset.x_val, dataset.y_val) if len(dataset.x_val) else None
    callbacks = []
    if progress is None:
        trained.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=batch_size,
                    validation_data=validation, verbose=0, shuffle=True)
        return trained
    with progress(description, epochs) as advance:
        callbacks.append(_ProgressCallback(advance))
        trained.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=batch_size,
                    validation_data=validation, verbose=0, shuffle=True, callbacks=callbacks)
    return trained


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Float outputs, batch by batch, without Keras' own progress printing."""
    outputs = [np.asarray(model(tf.convert_to_tensor(x[i:i + batch_size]), training=False))
               for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs, axis=0).astype(np.float32) if outputs else np.zeros((0,), np.float32)
