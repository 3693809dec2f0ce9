"""What the Keras stages do beyond the contract every stage keeps (tests/contract): the distillation
loss, clustering that keeps a pruned model's zeros, and TF-MOT's preserving QAT schemes."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends import get_backend
from edgekit.data import Dataset
from edgekit.formats.registry import get_format
from edgekit.recipe import ClusterConfig, PruneConfig, QuantizeConfig
from edgekit.stages import run_stage
from tests.helpers import band_dataset, stage_context, trained_artifact

keras_backend = get_backend("keras")


def export(artifact, fmt, path, calibration=None):
    """Write `artifact` as `fmt` with the Keras writer of that format."""
    return get_format(fmt).writer("keras").load()(artifact, path, calibration)


def _context(data: Dataset):
    return stage_context(data, "keras")


@pytest.fixture(scope="module")
def teacher():
    data = band_dataset()
    return data, trained_artifact("keras", data, epochs=6)


def _kernels(model):
    return [(layer.name, layer.kernel.numpy()) for layer in model.layers if hasattr(layer, "kernel")]


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


def test_clustering_limits_distinct_weights_and_keeps_zeros(teacher):
    data, art = teacher
    ctx = _context(data)
    pruned = run_stage(art, PruneConfig(sparsity=0.5, epochs=2), ctx)
    result = run_stage(pruned, ClusterConfig(clusters=8, epochs=1), ctx)
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
        art = run_stage(art, PruneConfig(sparsity=0.5, epochs=1), ctx)
    elif previous == "cluster":
        art = run_stage(art, ClusterConfig(clusters=16, epochs=1), ctx)
    config = QuantizeConfig(method="qat", epochs=1)
    result = run_stage(art, config, ctx)
    assert result.details["scheme"].startswith(scheme)
    path = export(result, "tflite", tmp_path / "q.tflite", data.x_calib)
    session = get_runtime("litert").open(path)
    assert session.inputs[0].dtype == "int8" and session.outputs[0].dtype == "int8"
    assert (session.predict(data.x_test).argmax(1) == data.y_test).mean() >= 0.85
    onnx_path = export(result, "onnx", tmp_path / "q.onnx", data.x_calib)
    import onnx

    from edgekit.formats.onnx.saturation import saturates

    # 8-bit weights: int8, or the same values as uint8 where ORT's int8-weight kernels saturate
    eight_bit = onnx.TensorProto.UINT8 if saturates() else onnx.TensorProto.INT8
    weights = [t for t in onnx.load(str(onnx_path)).graph.initializer if len(t.dims) >= 2]
    assert weights and all(t.data_type == eight_bit for t in weights)
