"""Bias correction of torch models (`Backend.correct_bias`): a copy whose biases, and only they, make
the int8-rounded model's mean outputs those of the float model; a torch.export teacher alike."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends import get_backend  # noqa: E402
from edgekit.bias_correction import quantized_weight  # noqa: E402

nn = torch.nn
backend = get_backend("torch")
SAMPLES = np.random.default_rng(0).uniform(0.0, 1.0, size=(64, 8, 8, 3)).astype(np.float32)  # channels-last
LAYERS = ["stem", "block.0", "block.1", "block.3", "head"]


class _Net(nn.Module):
    """conv (relu) -> depthwise (multiplier 2, padded, strided) -> grouped conv -> conv -> flatten ->
    linear, each with one output channel 50 times larger than the others, so per-tensor rounding moves
    the other channels' means; the middle convolutions sit in a nested nn.Sequential."""

    def __init__(self, relu: bool = True):
        super().__init__()
        act = nn.ReLU() if relu else nn.Identity()
        self.stem = nn.Conv2d(3, 6, 3)
        self.act = act
        self.block = nn.Sequential(nn.Conv2d(6, 12, 3, padding=1, stride=2, groups=6), nn.Conv2d(12, 8, 1, groups=2),
                                   act, nn.Conv2d(8, 4, 1))
        self.pool = nn.Flatten() if relu else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * 3 * 3 if relu else 4, 3)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    module.weight[0] *= 50
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)

    def forward(self, x):
        return self.head(self.pool(self.block(self.act(self.stem(x)))))


def _model(relu: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return _Net(relu).eval()


def _rounded(model, per_channel: bool):
    """A copy of `model` with every weight replaced by its int8-rounded value, as the exporters store it."""
    copy = backend.clone(model)
    modules = dict(copy.named_modules())
    with torch.no_grad():
        for name in LAYERS:
            weight = modules[name].weight
            weight.copy_(torch.from_numpy(quantized_weight(weight.detach().numpy(), per_channel)))
    return copy


def _mean_error(model, reference) -> float:
    return float(np.abs(backend.predict(model, SAMPLES).mean(0) - backend.predict(reference, SAMPLES).mean(0)).mean())


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_copy_whose_biases_bring_the_rounded_means_back():
    model = _model()
    before = _state(model)
    corrected, records = backend.correct_bias(model, SAMPLES, per_channel=False)

    assert corrected is not model and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert [r["layer"] for r in records] == LAYERS == backend.weight_layers(model)
    assert all(r["largest_shift"] > 0 for r in records)
    after = corrected.state_dict()
    for key, value in before.items():  # only the biases changed
        assert torch.equal(value, after[key]) != key.endswith(".bias"), key

    uncorrected = _mean_error(_rounded(model, False), model)
    assert _mean_error(_rounded(corrected, False), model) < 0.5 * uncorrected, uncorrected


def test_per_channel_rounding_is_corrected_too():
    """On a linear model (no ReLU to turn rounding noise into a mean of its own) the correction gives
    the means back, the depthwise layer's zero padding and stride included, but for what a bias per
    channel cannot fix: the sample mean differs a little from position to position, and the strided
    layer reads only some positions."""
    model = _model(relu=False)
    corrected, records = backend.correct_bias(model, SAMPLES)
    assert len(records) == len(LAYERS)
    uncorrected = _mean_error(_rounded(model, True), model)
    assert _mean_error(_rounded(corrected, True), model) < 0.1 * uncorrected, uncorrected


def test_a_torch_export_teacher_is_corrected_like_the_module(tmp_path):
    model = _model()
    example = torch.from_numpy(SAMPLES[:1].transpose(0, 3, 1, 2).copy())
    torch.export.save(torch.export.export(model, (example,)), tmp_path / "teacher.pt2")
    loaded = backend.load(tmp_path / "teacher.pt2")  # a static batch of 1: samples go one by one
    before = _state(loaded)

    corrected, records = backend.correct_bias(loaded, SAMPLES, per_channel=False)
    expected, expected_records = backend.correct_bias(model, SAMPLES, per_channel=False)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in before.items())
    assert [r["layer"] for r in records] == [r["layer"] for r in expected_records]
    for key, value in expected.state_dict().items():
        assert torch.allclose(corrected.state_dict()[key], value, atol=1e-5), key
    assert np.allclose(backend.predict(corrected, SAMPLES), backend.predict(expected, SAMPLES), rtol=1e-4)


def test_what_is_left_as_it_is():
    """Layers without a bias are skipped; a model with none to correct, and a TorchScript one, come back as they are."""
    plain = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 2)).eval()
    _, records = backend.correct_bias(plain, SAMPLES)
    assert [r["layer"] for r in records] == ["3"]
    no_bias = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten(), nn.Linear(144, 2, bias=False))
    assert backend.correct_bias(no_bias, SAMPLES) == (no_bias, [])
    scripted = torch.jit.script(_model())
    assert backend.correct_bias(scripted, SAMPLES) == (scripted, [])
