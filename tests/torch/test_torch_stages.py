"""What the torch stages do beyond the contract every stage keeps (tests/contract): the distillation
loss, the modules pruning reports, channel pruning's dependency check and PT2E quantization-aware training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.artifact import Artifact  # noqa: E402
from edgekit.data import Dataset  # noqa: E402
from edgekit.recipe import DistillConfig, PruneConfig, QuantizeConfig  # noqa: E402
from edgekit.stages import run_stage  # noqa: E402
from edgekit.backends.torch import BACKEND, distill, prune  # noqa: E402
from tests.helpers import band_dataset, stage_context, trained_artifact


def _context(data: Dataset):
    return stage_context(data, "torch")


@pytest.fixture(scope="module")
def teacher():
    data = band_dataset()
    return data, trained_artifact("torch", data, epochs=4)


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unchanged(before: dict, model) -> bool:
    after = model.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def _accuracy(model, data) -> float:
    return float((BACKEND.predict(model, data.x_test).argmax(1) == data.y_test).mean())


def _weights(model) -> list[tuple[str, np.ndarray]]:
    return [(name, m.weight.detach().numpy()) for name, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def test_teacher_is_accurate(teacher):
    data, art = teacher
    assert _accuracy(art.model, data) >= 0.95


def test_make_student_takes_the_teacher_outputs_and_data_shape(teacher):
    data, art = teacher
    config = DistillConfig(student={"arch": "mlp", "width": 0.25})
    student = distill.make_student(config, art.model, data, _context(data).recipe)
    assert BACKEND.predict(student, data.x_test[:3]).shape == (3, 4)


def test_distillation_loss_matches_the_formula():
    t = torch.tensor([[2.0, 0.5, -1.0]])
    s = torch.tensor([[0.3, 1.0, 0.1]])
    y = torch.tensor([1])

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    tn, sn = t.numpy()[0], s.numpy()[0]
    pt, ps = softmax(tn / 2), softmax(sn / 2)
    kl = float((pt * np.log(pt / ps)).sum()) * 4.0
    ce = -float(np.log(softmax(sn)[1]))
    got = float(distill.distillation_loss(s, t, y, temperature=2.0, alpha=0.7, task="classification"))
    assert got == pytest.approx(0.7 * kl + 0.3 * ce, rel=1e-5)
    regression = float(distill.distillation_loss(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [2.0]]),
                                                 torch.tensor([0.0, 2.0]), 4.0, 0.25, "regression"))
    assert regression == pytest.approx(0.25 * (0.25 / 2) + 0.75 * (1.0 / 2))


def test_polynomial_schedule_follows_tfmot():
    assert prune.polynomial_sparsity(0, 0.1, 0.8, 100) == pytest.approx(0.1)
    assert prune.polynomial_sparsity(50, 0.1, 0.8, 100) == pytest.approx(0.8 - 0.7 * 0.125)
    assert prune.polynomial_sparsity(100, 0.1, 0.8, 100) == pytest.approx(0.8)
    assert prune.polynomial_sparsity(150, 0.1, 0.8, 100) == pytest.approx(0.8)


@pytest.mark.parametrize("structure, expected", [
    ("unstructured", {"pruned_layers": ["conv1", "conv2", "dense1", "head"]}),
    ("2:4", {"left_dense": ["conv1"], "pruned_layers": ["conv2", "dense1", "head"]}),  # conv1: 1 input channel
])
def test_pruning_names_the_modules_it_pruned(teacher, structure, expected):
    data, art = teacher
    result = run_stage(art, PruneConfig(structure=structure, epochs=1), _context(data))
    for key, value in expected.items():
        assert result.details[key] == value


def test_channel_pruning_reports_the_channels_kept_per_layer(teacher):
    data, art = teacher
    result = run_stage(art, PruneConfig(structure="channels", sparsity=0.5, epochs=1), _context(data))
    assert result.details["layers"]["conv1"] == {"before": 32, "after": 16}
    assert "head" not in result.details["layers"]


@pytest.mark.parametrize("arch", ["cnn_small", "ds_cnn", "resnet8"])
def test_check_prunable_accepts_zoo_models(arch):
    data = band_dataset(n=40)
    model = BACKEND.build(arch, 0.5, data.input_shape, 4, "classification", seed=0)
    before = _state(model)
    assert prune.check_prunable(model, data) is None
    assert _unchanged(before, model)


def test_check_prunable_names_what_breaks():
    from edgekit.errors import InputError

    class HardCodedReshape(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.head = torch.nn.Linear(8 * 8 * 8, 4)

        def forward(self, x):
            return self.head(self.conv(x).reshape(x.shape[0], 8 * 8 * 8))

    data = band_dataset(n=40)
    with pytest.raises(InputError, match="forward pass after pruning.*shape"):
        prune.check_prunable(HardCodedReshape(), data)
    exported = torch.export.export(HardCodedReshape(), (torch.zeros(1, 1, 8, 8),)).module()
    with pytest.raises(InputError, match="no nn.Conv2d"):
        prune.check_prunable(exported, data)


def test_qat_returns_a_quantized_graph_and_fine_tuned_float_model(teacher):
    data, art = teacher
    before = _state(art.model)
    config = QuantizeConfig(method="qat", epochs=1)
    result = run_stage(art, config, _context(data))
    assert _unchanged(before, art.model)
    assert result.qat is not None and result.qat.quantizer is not None
    batch = torch.from_numpy(np.transpose(data.x_test[:5], (0, 3, 1, 2)).copy())
    assert tuple(result.model(batch).shape) == (5, 4)
    assert _accuracy(result.model, data) >= 0.85
    assert result.plan == config.plan() and result.plan.quantization_aware
    float_model = result.qat.float_model
    assert isinstance(float_model, torch.nn.Module) and float_model is not art.model
    assert not _unchanged(before, float_model)  # the fine-tuned weights, not the input's
    assert _accuracy(float_model, data) >= 0.85
    assert "float_model" not in result.details


def test_qat_after_pruning_keeps_the_zeros(teacher):
    data, art = teacher
    ctx = _context(data)
    pruned = run_stage(art, PruneConfig(sparsity=0.5, schedule="constant", epochs=1), ctx)
    result = run_stage(pruned, QuantizeConfig(method="qat", epochs=1), ctx)
    assert result.details["scheme"].endswith("sparsity-preserving")
    assert result.pruned == "unstructured"
    for name, weight in _weights(result.qat.float_model):
        assert (weight == 0).mean() == pytest.approx(0.5, abs=0.02), name


def test_qat_handles_batch_norm_models():
    data = band_dataset(n=200)
    model = BACKEND.build("ds_cnn", 0.25, data.input_shape, 4, "classification", seed=0)
    model = BACKEND.train(model, data, epochs=3, batch_size=32, learning_rate=0.01, seed=0)
    before = _state(model)
    result = run_stage(Artifact("torch", model), QuantizeConfig(method="qat", epochs=2), _context(data))
    assert _unchanged(before, model)
    assert BACKEND.predict(result.model, data.x_test).shape == (len(data.x_test), 4)
    float_model = result.qat.float_model
    assert not _unchanged(before, float_model)
    # the converted graph and the fine-tuned float weights agree on most test samples
    agree = (BACKEND.predict(result.model, data.x_test).argmax(1) == BACKEND.predict(float_model, data.x_test).argmax(1))
    assert agree.mean() >= 0.9
