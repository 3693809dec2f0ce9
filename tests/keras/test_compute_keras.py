"""Keras training under the recipe's `compute:` block: mixed precision computes in bfloat16 on the CPU
(float16 with loss scaling on a GPU) while every model a training function or stage returns stays
float32, the model passed in is untouched, and the stages TF-MOT cannot train in 16 bits are refused."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.keras import distill as distill_module
from edgekit.backends.keras import train, zoo
from edgekit.backends.keras.compat import keras, tf
from edgekit.compute import Compute
from edgekit.recipe import ClusterConfig, DistillConfig, PruneConfig, parse_recipe
from edgekit.stages import run_stage
from tests.helpers import (artifact_of, band_dataset, colour_dataset, read_report, run_edgekit, stage_context,
                           stage_of, support_refusal, trained_artifact)

MIXED = Compute(precision="mixed")


class Probe(keras.layers.Layer):
    """A square matmul that records the dtype of its inputs and of the product each time a training
    step traces it, which is the dtype the training step really computes in."""

    seen: list = []

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(input_shape[-1], input_shape[-1]),
                                      initializer="identity")

    def call(self, inputs, training=None):
        product = tf.matmul(inputs, self.kernel)
        if training:
            Probe.seen.append((inputs.dtype.name, product.dtype.name))
        return product

    def get_config(self) -> dict:
        return super().get_config()


def _probed_model(data):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(data.input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    x = Probe(name="probe")(x)
    return keras.Model(inputs, keras.layers.Dense(data.num_classes, name="logits")(x))


def _all_float32(model) -> bool:
    return train.is_float32(model) and {w.dtype.name for w in model.weights} == {"float32"}


def _accuracy(model, data) -> float:
    return float((train.predict(model, data.x_test).argmax(axis=1) == data.y_test).mean())


@pytest.fixture(scope="module")
def data():
    return band_dataset()


@pytest.fixture(scope="module")
def teacher(data):
    return trained_artifact("keras", data, epochs=6)


@pytest.fixture
def trained_in(monkeypatch):
    """({layer class: compute dtype} but the output layer, {dtype of the float variables}) of every
    model `compile_and_fit` or a distiller trains."""
    seen: list = []

    def record(model):
        trained = model.student if isinstance(model, distill_module.Distiller) else model
        seen.append(({type(layer).__name__: layer.compute_dtype for layer in trained.layers[:-1]},
                     {w.dtype.name for w in trained.weights if w.dtype.is_floating}))

    compile_and_fit, distiller_fit = train.compile_and_fit, distill_module.Distiller.fit

    def recording_compile_and_fit(model, *args, **kwargs):
        record(model)
        return compile_and_fit(model, *args, **kwargs)

    def recording_fit(self, *args, **kwargs):
        record(self)
        return distiller_fit(self, *args, **kwargs)

    monkeypatch.setattr(train, "compile_and_fit", recording_compile_and_fit)
    monkeypatch.setattr(distill_module.Distiller, "fit", recording_fit)
    return seen


def test_mixed_training_computes_in_bfloat16_and_returns_a_float32_copy(data):
    model = _probed_model(data)
    before = [w.copy() for w in model.get_weights()]
    Probe.seen.clear()
    with train.computing(MIXED):
        trained = train.fit(model, data, epochs=2, batch_size=32, learning_rate=3e-3, seed=0)
    assert Probe.seen and set(Probe.seen) == {("bfloat16", "bfloat16")}
    assert _all_float32(trained)
    assert not all(np.array_equal(a, b) for a, b in zip(trained.get_weights(), before))  # it trained
    assert _all_float32(model) and all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert keras.mixed_precision.global_policy().name == "float32"

    Probe.seen.clear()
    train.fit(model, data, epochs=1, batch_size=32, learning_rate=3e-3, seed=0)
    assert Probe.seen and set(Probe.seen) == {("float32", "float32")}  # outside `computing`: float32


def test_the_training_copy_keeps_the_logits_and_softmax_float32():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    logits = keras.layers.Dense(3, name="logits")(hidden)
    model = keras.Model(inputs, keras.layers.Softmax(name="probabilities")(logits))
    with train.computing(MIXED):
        copy = train.training_copy(model)
    dtypes = {layer.name: layer.compute_dtype for layer in copy.layers[1:]}
    assert dtypes == {"hidden": "bfloat16", "logits": "float32", "probabilities": "float32"}
    assert copy.output.dtype == tf.float32
    assert train.float_tail(model) == {"logits", "probabilities"}
    assert train.is_float32(train.float_copy(copy)) and train.float_copy(model) is model


def test_mixed_accuracy_is_within_two_points_of_float32():
    data = band_dataset(n=800, noise=1.5)  # noisy enough that neither reaches 100%
    model = zoo.build("cnn_small", 1.0, data.input_shape, data.num_classes, "classification")
    accuracies = {}
    for compute in (Compute(), MIXED):
        with train.computing(compute):
            trained = train.fit(model, data, epochs=8, batch_size=32, learning_rate=3e-3, seed=0)
        accuracies[compute.precision] = _accuracy(trained, data)
    assert 0.85 <= accuracies["float32"] < 1.0, accuracies
    assert abs(accuracies["mixed"] - accuracies["float32"]) <= 0.02, accuracies


def test_transfer_learning_with_a_frozen_base_trains_mixed_and_returns_float32(trained_in):
    from edgekit.backends import get_backend
    from edgekit.backends.keras import transfer

    data = colour_dataset(n=80)
    model = get_backend("keras").build("mobilenet_v2", 0.35, data.input_shape, 3, "classification", seed=0)
    with train.computing(MIXED):
        trained = transfer.fit(model, data, epochs=1, batch_size=16, learning_rate=1e-3, seed=0, freeze="base")
    changed = {after.name for after, before in zip(trained.layers, model.layers)
               if any(not np.array_equal(a, b) for a, b in zip(after.get_weights(), before.get_weights()))}
    ((layers, _),) = trained_in
    assert layers["Conv2D"] == layers["BatchNormalization"] == "bfloat16"
    assert changed == {"logits"}  # the frozen base (BatchNorm statistics too) kept its weights
    assert _all_float32(trained) and all(layer.trainable for layer in trained.layers)


def test_the_optimizer_scales_the_loss_only_for_float16():
    with train.computing(Compute("cuda:0", "mixed")):
        scaled = train.optimizer(1e-3)
    with train.computing(MIXED):
        plain = train.optimizer(1e-3)
    assert isinstance(scaled, keras.mixed_precision.LossScaleOptimizer)
    assert not isinstance(plain, keras.mixed_precision.LossScaleOptimizer)


@pytest.mark.parametrize("config, wrapper", [
    (DistillConfig(epochs=4, learning_rate=3e-3), "Conv2D"),
    (PruneConfig(sparsity=0.5, epochs=2), "PruneLowMagnitude"),
    (ClusterConfig(clusters=8, epochs=1), "ClusterWeights"),
], ids=["distill", "prune", "cluster"])
def test_tf_mot_and_distillation_stages_train_in_bfloat16_and_return_float32(data, teacher, trained_in, config,
                                                                           wrapper):
    teacher_weights = [w.copy() for w in teacher.model.get_weights()]
    with train.computing(MIXED):
        result = run_stage(teacher, config, stage_context(data, "keras"))
    ((layers, variables),) = trained_in
    assert layers[wrapper] == "bfloat16", layers  # TF-MOT wrappers run their layer's call in their own policy
    assert variables == {"float32"}  # weights, masks and centroids alike: only the compute is 16-bit
    assert _all_float32(result.model)
    assert _accuracy(result.model, data) >= 0.9
    assert all(np.array_equal(a, b) for a, b in zip(teacher.model.get_weights(), teacher_weights))
    kernels = [layer.kernel.numpy() for layer in result.model.layers if hasattr(layer, "kernel")]
    if config.key == "prune":
        assert np.mean([(k == 0).mean() for k in kernels]) >= 0.45
    if config.key == "cluster":
        assert all(len(np.unique(k)) <= 8 for k in kernels)


def test_float16_with_loss_scaling_trains_the_distillation_step(data, teacher, trained_in, monkeypatch):
    """The GPU's precision, run on the CPU: the distiller's own train step must scale its loss."""
    monkeypatch.setattr(train, "device_name", lambda compute: "/CPU:0")
    optimizers, make_optimizer = [], train.optimizer

    def recording_optimizer(learning_rate):
        optimizers.append(make_optimizer(learning_rate))
        return optimizers[-1]

    monkeypatch.setattr(train, "optimizer", recording_optimizer)
    with train.computing(Compute("cuda:0", "mixed")):
        result = run_stage(teacher, DistillConfig(epochs=4, learning_rate=3e-3), stage_context(data, "keras"))
    ((layers, _),) = trained_in
    assert layers["Conv2D"] == "float16"
    (optimizer,) = optimizers
    assert isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer) and optimizer.iterations > 0
    assert _all_float32(result.model) and _accuracy(result.model, data) >= 0.9


def _recipe(precision: str, method: str):
    return parse_recipe({"version": 1, "teacher": {"build": {"arch": "cnn_tiny"}, "framework": "keras"},
                         "compute": {"precision": precision},
                         "stages": [{"prune": {"sparsity": 0.5}}, {"quantize": {"method": method}}]})


def test_qat_under_mixed_precision_is_refused_at_validation_naming_the_reason():
    from edgekit.recipe.support import check_support

    message = support_refusal(_recipe("mixed", "qat"))
    assert "stages[1]: quantize.qat cannot train keras models with compute.precision: mixed: TF-MOT" in message
    assert "FakeQuantWithMinMaxVars" in message and "compute.precision: float32" in message
    assert check_support(_recipe("float32", "qat")) == "keras"
    assert check_support(_recipe("mixed", "ptq")) == "keras"  # prune trains mixed; ptq does not train


def test_the_reason_for_refusing_qat_holds_fake_quantization_takes_no_bfloat16():
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError), match="bfloat16"):
        tf.quantization.fake_quant_with_min_max_vars(tf.zeros([2], tf.bfloat16), -1.0, 1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not train.gpus(), reason="TensorFlow sees no GPU")
def test_on_a_gpu_mixed_precision_is_float16_with_loss_scaling(data):
    model = _probed_model(data)
    with train.computing(Compute("cuda:0", "mixed")):
        copy = train.training_copy(model)
        Probe.seen.clear()
        train.compile_and_fit(copy, data, epochs=3, batch_size=32, learning_rate=3e-3, seed=0)
    assert Probe.seen and set(Probe.seen) == {("float16", "float16")}
    assert isinstance(copy.optimizer, keras.mixed_precision.LossScaleOptimizer)
    assert "GPU:0" in copy.weights[0].device
    trained = train.float_copy(copy)
    assert _all_float32(trained) and _accuracy(trained, data) >= 0.9


TINY_RECIPE = """\
version: 1
name: tiny-mixed
seed: 0
data: {source: digits, scale: 0.0625, calibration_samples: 32, test_samples: 100}
teacher:
  build: {arch: mlp}
  train: {epochs: 10, batch_size: 32, learning_rate: 0.003}
stages:
  - prune: {sparsity: 0.5, epochs: 2}
export: {formats: [tflite]}
evaluate: {runtimes: [litert], latency: {warmup: 1, runs: 3}}
"""


@pytest.mark.slow
def test_compress_with_precision_mixed_reports_it_and_exports_float32(tmp_path):
    recipe, out = tmp_path / "tiny.yaml", tmp_path / "out"
    recipe.write_text(TINY_RECIPE)
    result = run_edgekit("compress", str(recipe), "--precision", "mixed", "--device", "cpu", "--output", str(out),
                         "-q", timeout=300)
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    mixed = {"device": "cpu", "precision": "mixed", "workers": 1, "compute_dtype": "bfloat16"}
    prune = stage_of(report, "prune")["compute"]
    assert report["compute"] == mixed and {key: prune[key] for key in mixed} == mixed
    assert prune["steps"][0] > 0 and prune["global_batch"] == prune["worker_batch"]
    from ai_edge_litert.interpreter import Interpreter

    for name in ("model.tflite", "baseline.tflite"):
        tensors = Interpreter(model_path=str(out / name)).get_tensor_details()
        dtypes = {np.dtype(t["dtype"]).name for t in tensors}
        assert "float32" in dtypes and not dtypes & {"bfloat16", "float16", "float64"}, (name, dtypes)
    assert artifact_of(report, "teacher")["accuracy"] >= 0.9 and artifact_of(report, "model.tflite")["accuracy"] >= 0.9
