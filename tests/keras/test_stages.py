"""Each Keras training stage on tiny models built in code: what it promises, and that the model it
was given comes back untouched."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.backends import get_backend
from edgekit.data import Dataset
from edgekit.run.context import RunContext
from edgekit.recipe import ClusterConfig, DistillConfig, PruneConfig, QuantizeConfig, parse_recipe
from edgekit.stages import STAGES
from tests.helpers import band_dataset

keras_backend = get_backend("keras")


def _dataset(n=400, shape=(8, 8, 1), classes=4, seed=0, task="classification") -> Dataset:
    return band_dataset(n=n, shape=shape, classes=classes, seed=seed, task=task, validation=0.1)


def _context(data: Dataset) -> RunContext:
    recipe = parse_recipe({"version": 1, "task": data.task, "teacher": {"build": {"arch": "cnn_small"}}})
    return RunContext(recipe, data, "keras")


@pytest.fixture(scope="module")
def teacher():
    data = _dataset()
    model = keras_backend.build("cnn_small", 1.0, data.input_shape, 4, "classification", seed=0)
    model = keras_backend.train(model, data, epochs=6, batch_size=32, learning_rate=0.003, seed=0)
    return data, Artifact("keras", model)


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def _unchanged(before, model) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def _accuracy(model, data) -> float:
    return float((keras_backend.predict(model, data.x_test).argmax(1) == data.y_test).mean())


def _kernels(model):
    return [(layer.name, layer.kernel.numpy()) for layer in model.layers if hasattr(layer, "kernel")]


def test_distill_trains_a_smaller_student_and_leaves_the_teacher(teacher):
    data, art = teacher
    before = _weights(art.model)
    config = DistillConfig(student={"arch": "cnn_tiny", "width": 1.0}, epochs=15, learning_rate=0.01)
    result = STAGES["distill"](art, config, _context(data))
    assert _unchanged(before, art.model)
    assert result.model.count_params() < art.model.count_params() / 4
    assert _accuracy(result.model, data) >= 0.9
    assert result.details["student_params"] == result.model.count_params()


def test_distillation_loss_matches_the_formula():
    from edgekit.backends.keras.distill import Distiller
    from edgekit.backends.keras.compat import tf

    model = keras_backend.build("mlp", 0.1, (4,), 3, "classification", seed=0)
    distiller = Distiller(model, keras_backend.clone(model), temperature=2.0, alpha=0.7, task="classification")
    t = np.array([[2.0, 0.5, -1.0]], np.float32)
    s = np.array([[0.3, 1.0, 0.1]], np.float32)
    y = np.array([1])

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    pt, ps = softmax(t[0] / 2), softmax(s[0] / 2)
    kl = float((pt * np.log(pt / ps)).sum()) * 4.0
    ce = -float(np.log(softmax(s[0])[1]))
    got = float(distiller._loss(tf.constant(y), tf.constant(t), tf.constant(s))[0])
    assert got == pytest.approx(0.7 * kl + 0.3 * ce, rel=1e-4)


def test_regression_distills_to_the_teacher_outputs():
    data = _dataset(task="regression")
    model = keras_backend.build("mlp", 0.5, data.input_shape, 1, "regression", seed=0)
    model = keras_backend.train(model, data, epochs=10, batch_size=32, learning_rate=0.003, seed=0)
    config = DistillConfig(student={"arch": "mlp", "width": 0.25}, epochs=10, learning_rate=0.003)
    result = STAGES["distill"](Artifact("keras", model), config, _context(data))
    mae = float(np.abs(keras_backend.predict(result.model, data.x_test)[:, 0] - data.y_test).mean())
    assert mae < 0.05


@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_unstructured_pruning_reaches_the_target_sparsity(teacher, schedule):
    data, art = teacher
    before = _weights(art.model)
    config = PruneConfig(sparsity=0.75, schedule=schedule, epochs=3)
    result = STAGES["prune"](art, config, _context(data))
    assert _unchanged(before, art.model)
    assert not any("prune_low_magnitude" in layer.name for layer in result.model.layers), "wrappers stripped"
    for name, kernel in _kernels(result.model):
        assert (kernel == 0).mean() == pytest.approx(0.75, abs=0.02), name
    assert _accuracy(result.model, data) >= 0.85
    assert result.pruned == "unstructured"


def test_two_four_pruning_keeps_two_of_every_four(teacher):
    data, art = teacher
    result = STAGES["prune"](art, PruneConfig(structure="2:4", epochs=1), _context(data))
    pruned = result.details["pruned_layers"]
    assert pruned and result.details["left_dense"]  # the first conv has 1 input channel
    for name, kernel in _kernels(result.model):
        if name not in pruned:
            continue
        groups = np.moveaxis(kernel, -2, -1).reshape(-1, 4)  # groups of 4 along the input dimension
        assert ((groups != 0).sum(axis=1) <= 2).all(), name


def test_channel_pruning_gives_a_smaller_dense_model(teacher):
    data, art = teacher
    result = STAGES["prune"](art, PruneConfig(structure="channels", sparsity=0.5, epochs=3), _context(data))
    assert result.model.count_params() < 0.6 * art.model.count_params()
    assert result.model.output_shape == art.model.output_shape
    assert _accuracy(result.model, data) >= 0.85
    assert result.pruned is None  # a dense model: nothing sparse for later stages to keep


def test_clustering_limits_distinct_weights_and_keeps_zeros(teacher):
    data, art = teacher
    ctx = _context(data)
    pruned = STAGES["prune"](art, PruneConfig(sparsity=0.5, epochs=2), ctx)
    result = STAGES["cluster"](pruned, ClusterConfig(clusters=8, epochs=1), ctx)
    assert result.details["sparsity_preserved"] is True
    for (name, kernel), (_, pruned_kernel) in zip(_kernels(result.model), _kernels(pruned.model)):
        assert len(np.unique(kernel)) <= 8 + 1, name  # the centroids, plus the preserved zero
        assert (kernel == 0).mean() >= (pruned_kernel == 0).mean() - 0.01, name


@pytest.mark.parametrize("previous, scheme", [(None, "QAT"), ("prune", "PQAT"), ("cluster", "CQAT")])
def test_qat_picks_the_preserving_scheme_and_exports_full_integer(teacher, tmp_path, previous, scheme):
    from edgekit.runtimes import get_runtime

    data, art = teacher
    ctx = _context(data)
    if previous == "prune":
        art = STAGES["prune"](art, PruneConfig(sparsity=0.5, epochs=1), ctx)
    elif previous == "cluster":
        art = STAGES["cluster"](art, ClusterConfig(clusters=16, epochs=1), ctx)
    config = QuantizeConfig(method="qat", epochs=1)
    result = STAGES["quantize.qat"](art, config, ctx)
    assert result.details["scheme"].startswith(scheme)
    path = keras_backend.export(result, "tflite", tmp_path / "q.tflite", data.x_calib)
    session = get_runtime("litert").open(path)
    assert session.inputs[0].dtype == "int8" and session.outputs[0].dtype == "int8"
    assert (session.predict(data.x_test).argmax(1) == data.y_test).mean() >= 0.85
    onnx_path = keras_backend.export(result, "onnx", tmp_path / "q.onnx", data.x_calib)
    import onnx

    weights = [t for t in onnx.load(str(onnx_path)).graph.initializer if len(t.dims) >= 2]
    assert weights and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
