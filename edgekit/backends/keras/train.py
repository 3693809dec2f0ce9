"""Training Keras models: the teacher from `teacher.train` and the fine-tuning of every stage.

Classification models train with sparse categorical cross-entropy on their logits (or on their
probabilities, for loaded models that end in a softmax); regression models with mean squared error.
`fit` trains a clone: the model passed in is never changed. Stages that wrap a model (TF-MOT) take a
`training_copy` first and then call `compile_and_fit` on the wrapper they own.

Compute (`computing`, read back with `current`): training runs on the compute's device (`on_device`:
`tf.device("/GPU:N")` or the CPU). Mixed precision never touches Keras' global policy (exports and
measurements run float32): `training_copy` rebuilds the model with each layer under the
`mixed_bfloat16` (CPU) or `mixed_float16` (GPU) policy, its float32 tail (the output layer and a
softmax after it, as TensorFlow's mixed-precision guide keeps them) excepted; the variables stay
float32, so `float_copy` hands back a float32 model with the trained weights. float16 adds loss
scaling (`optimizer`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools

import numpy as np

from edgekit.backends.keras import distributed
from edgekit.backends.keras.compat import keras, tf
from edgekit.backends.keras.streaming import fit_inputs
from edgekit.compute import Compute, computing, count, current, gpu_index, split_batch

def gpus() -> int:
    """How many GPUs this framework sees."""
    return len(tf.config.list_physical_devices("GPU"))


def device_name(compute: Compute) -> str:
    """The TensorFlow device `compute` trains on: "/GPU:N" for "cuda:N", else "/CPU:0"."""
    return f"/GPU:{gpu_index(compute.device)}" if compute.on_gpu else "/CPU:0"


def on_device(function):
    """Run `function` under `tf.device` of the current compute, so the variables it builds (models,
    TF-MOT wrappers, optimizer slots) and the steps it trains sit on that device: a visible GPU is
    not used when the compute says cpu, and "cuda:1" is not GPU 0."""

    @functools.wraps(function)
    def placed(*args, **kwargs):
        if distributed.active() is not None:
            return _in_strategy(function, *args, **kwargs)
        with tf.device(device_name(current())):
            return function(*args, **kwargs)

    return placed


_DEPTH = contextvars.ContextVar("edgekit_strategy_depth", default=0)


def _in_strategy(function, *args, **kwargs):
    """Run `function` in the strategy's scope (which places the variables on the workers' devices);
    the outermost call hands on a plain copy of the model it returns (`distributed.plain`)."""
    depth = _DEPTH.get()
    token = _DEPTH.set(depth + 1)
    try:
        with distributed.scope():
            result = function(*args, **kwargs)
    finally:
        _DEPTH.reset(token)
    if depth:
        return result
    if isinstance(result, keras.Model):
        return distributed.plain(result)
    if isinstance(getattr(result, "model", None), keras.Model):
        return dataclasses.replace(result, model=distributed.plain(result.model))
    return result


def policy_name(compute: Compute) -> str:
    """The Keras dtype policy of `compute`'s layers: float32, mixed_bfloat16 or mixed_float16."""
    return f"mixed_{compute.compute_dtype}" if compute.mixed else "float32"


def _inbound_layers(layer) -> list:
    return [inbound for node in layer._inbound_nodes for inbound in tf.nest.flatten(node.inbound_layers)]


def float_tail(model) -> set[str]:
    """Names of the layers that stay float32 in a mixed-precision copy: each layer producing an output
    and, back from it through layers without weights (softmax, activation, reshape), the first layer
    with weights, the logits. The outputs and the loss are then computed in float32, as TensorFlow's
    mixed-precision guide recommends (a 16-bit softmax loses the small probabilities)."""
    names: set[str] = set()
    pending = [tensor._keras_history.layer for tensor in model.outputs]
    while pending:
        layer = pending.pop()
        if layer.name in names:
            continue
        names.add(layer.name)
        if not layer.weights:
            pending.extend(_inbound_layers(layer))
    return names


def with_policy(model, policy: str):
    """A copy of `model` with the same weights whose layers (nested models' too) are rebuilt from their
    configs under dtype policy `policy`, its `float_tail` under float32. Variables are float32 under
    every policy, so the weights move between the copies unchanged."""
    tail = float_tail(model)

    def rebuild(layer):
        if isinstance(layer, keras.Model):
            return with_policy(layer, policy)
        config = layer.get_config()
        config["dtype"] = keras.mixed_precision.Policy("float32" if layer.name in tail else policy)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=rebuild)
    copy.set_weights(model.get_weights())
    return copy


def training_copy(model):
    """An independent copy of `model` to train under the current compute: a plain `clone` in
    float32, else a `with_policy` copy computing in mixed precision."""
    compute = current()
    return with_policy(model, policy_name(compute)) if compute.mixed else clone(model)


def is_float32(model) -> bool:
    """True when every layer of `model` (nested ones included) has the float32 policy."""
    return all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers(include_self=False))


def float_copy(model):
    """`model` with the float32 policy throughout, as every stage returns it (exports and the float
    baseline read float32 models): `model` itself when it is, else a float32 copy of its weights."""
    return model if is_float32(model) else with_policy(model, "float32")


def optimizer(learning_rate: float):
    """Adam, wrapped in a `LossScaleOptimizer` when the current compute trains in float16 (whose small
    gradients underflow unless the loss is scaled up first; bfloat16 has float32's range)."""
    adam = keras.optimizers.Adam(learning_rate)
    return keras.mixed_precision.LossScaleOptimizer(adam) if current().loss_scaling else adam


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


class StepCounter(keras.callbacks.Callback):
    """Counts the optimizer steps a `fit` ran on this worker, and the samples it trained, for the
    report (`edgekit.compute.count`). Keras' `fit` runs every sample once per epoch; on several
    workers each global batch is split between them (`distributed`), this worker taking its share
    of each batch's `compute.split_batch`-sized parts."""

    def __init__(self, samples: int, batch_size: int):
        super().__init__()
        self._samples, self._batch_size = int(samples), int(batch_size)
        self._rank, self._workers = distributed.rank(), distributed.replicas()
        self._steps = self._epochs = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        self._epochs += 1

    def on_train_end(self, logs=None):
        sizes = [min(self._batch_size, self._samples - start) for start in range(0, self._samples, self._batch_size)]
        sizes = [size for size in sizes if size >= self._workers]  # a smaller tail is left out (`whole_shares`)
        share = sum(len(split_batch(range(size), self._rank, self._workers)) for size in sizes)
        count(self._steps, share * self._epochs, self._batch_size, -(-self._batch_size // self._workers))


@on_device
def compile_and_fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None,
                    description="train", callbacks=(), loss=None):
    """Compile `model` with Adam and train it in place on the train split, on the current compute's
    device (a `training_copy` computes in its precision); returns the history."""
    keras.utils.set_random_seed(seed)
    distributed.sync_from_leader(model)
    default_loss, metrics = loss_and_metrics(dataset.task, model)
    model.compile(optimizer=optimizer(learning_rate), loss=loss or default_loss, metrics=metrics)
    data, kwargs = fit_inputs(dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, batch_size, seed)
    kwargs.update(epochs=epochs, verbose=0)
    callbacks = [*callbacks, StepCounter(len(dataset.x_train), batch_size)]
    if progress is None:
        return model.fit(*data, callbacks=callbacks, **kwargs)
    with progress(description, epochs) as advance:
        return model.fit(*data, callbacks=[*callbacks, ProgressCallback(advance)], **kwargs)


@on_device
def fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train"):
    """Train a copy of `model` on the dataset's train split, validating on its validation split, under
    the current compute; the copy returned is float32."""
    trained = training_copy(model)
    compile_and_fit(trained, dataset, epochs, batch_size, learning_rate, seed, progress, description)
    return float_copy(trained)


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Float outputs, batch by batch, without Keras' own progress printing."""
    outputs = [np.asarray(model(tf.convert_to_tensor(x[i:i + batch_size]), training=False))
               for i in range(0, len(x), batch_size)]
    return np.concatenate(outputs, axis=0).astype(np.float32) if outputs else np.zeros((0,), np.float32)


def steps_per_epoch(dataset, batch_size: int) -> int:
    return max(1, int(np.ceil(len(dataset.x_train) / batch_size)))
