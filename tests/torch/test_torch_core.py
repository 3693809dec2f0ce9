"""The torch backend's core: the zoo, training, prediction layout and teacher loading (fast, tiny models)."""

from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends.torch import loading, train, zoo  # noqa: E402
from edgekit.errors import InputError  # noqa: E402
from edgekit.zoo import ARCHITECTURES, BASES  # noqa: E402
from tests.helpers import band_dataset  # noqa: E402

nn = torch.nn


#: 8x8x1 images of noise with one bright vertical band; the class is which of three bands is bright.
#: 240 training, 80 validation and 80 test samples unless n / validation say otherwise.
bands = functools.partial(band_dataset, n=400, validation=0.2, shape=(8, 8, 1), classes=3, noise=0.3)


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- zoo ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - set(BASES)))  # bases: test_transfer*.py
@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3), (30, 40)])
def test_zoo_builds_and_runs(arch, shape):
    model = zoo.build(arch, 0.5, shape, 7, "classification")
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    out = train.predict(model, x)
    assert out.shape == (3, 7) and out.dtype == np.float32 and np.isfinite(out).all()


def test_zoo_regression_head_and_flat_input():
    model = zoo.build("mlp", 1.0, (12,), 1, "regression")
    assert train.predict(model, np.zeros((4, 12), np.float32)).shape == (4, 1)
    with pytest.raises(InputError, match="mlp"):
        zoo.build("cnn_small", 1.0, (12,), 3, "classification")


@pytest.mark.parametrize("arch", ["cnn_small", "resnet8"])
def test_zoo_models_trace_with_torch_export(arch):
    model = zoo.build(arch, 0.25, (8, 8, 1), 3, "classification")
    x = torch.randn(2, 1, 8, 8)
    program = torch.export.export(model, (x,))
    assert torch.allclose(program.module()(x), model(x), atol=1e-5)


def test_param_count_matches_keras_zoo():
    """Equal counts: torch parameters + BatchNorm running mean/var == Keras count_params()."""
    from edgekit.backends import get_backend

    try:
        keras_backend = get_backend("keras")
    except ImportError as exc:
        pytest.skip(f"keras backend unavailable: {exc}")
    for arch in ("mlp", "cnn_tiny", "cnn_small", "ds_cnn", "resnet8"):
        for shape in ((8, 8, 1), (30, 40)):
            keras_model = keras_backend.build(arch, 1.0, shape, 10, "classification", 0)
            torch_model = zoo.build(arch, 1.0, shape, 10, "classification")
            assert train.param_count(torch_model) == keras_model.count_params(), (arch, shape)


def test_param_count_counts_batchnorm_running_stats():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4))
    assert train.param_count(model) == 36 + 4 * 4  # conv weights, gamma/beta, running mean/var


# --- training -------------------------------------------------------------------------------------

def test_fit_learns_and_leaves_input_untouched():
    data = bands()
    model = zoo.build("mlp", 0.5, data.input_shape, 3, "classification")
    before = weights(model)
    seen = []

    class Bar:
        def __call__(self, description, total):
            seen.append((description, total))
            return self

        def __enter__(self):
            return lambda n=1, **fields: seen.append(fields)

        def __exit__(self, *exc):
            return False

    trained = train.fit(model, data, epochs=5, batch_size=32, learning_rate=3e-3, seed=1, progress=Bar(),
                        description="teacher")
    assert same_weights(before, weights(model))
    accuracy = (train.predict(trained, data.x_test).argmax(-1) == data.y_test).mean()
    assert accuracy >= 0.9
    assert seen[0] == ("teacher", 5) and len(seen) == 6
    assert {"loss", "accuracy", "val_accuracy"} <= set(seen[-1])
    assert not trained.training


def test_fit_conv_net_with_batchnorm():
    data = bands()
    model = zoo.build("resnet8", 0.25, data.input_shape, 3, "classification")
    trained = train.fit(model, data, epochs=4, batch_size=32, learning_rate=1e-2, seed=0)
    assert (train.predict(trained, data.x_test).argmax(-1) == data.y_test).mean() >= 0.9


def test_fit_is_deterministic():
    data = bands(n=200, validation=0.3)
    model = zoo.build("cnn_tiny", 1.0, data.input_shape, 3, "classification")
    a = train.fit(model, data, epochs=2, batch_size=16, learning_rate=1e-3, seed=5)
    b = train.fit(model, data, epochs=2, batch_size=16, learning_rate=1e-3, seed=5)
    c = train.fit(model, data, epochs=2, batch_size=16, learning_rate=1e-3, seed=6)
    assert same_weights(weights(a), weights(b))
    assert not same_weights(weights(a), weights(c))


def test_fit_regression_and_hooks():
    data = bands(task="regression")
    model = zoo.build("mlp", 0.25, data.input_shape, 1, "regression")
    calls = []
    train.fit_module(model, data, epochs=2, batch_size=64, learning_rate=1e-3, seed=0,
                     loss_fn=lambda out, xb, yb: ((out[:, 0] - yb) ** 2).mean() + 0 * xb.sum(),
                     after_step=lambda m: calls.append(m))
    assert len(calls) == 2 * 4 and calls[0] is model
    train.fit_module(model, data, epochs=1, batch_size=64, learning_rate=1e-3, seed=0)  # default MSE, (n,1) vs (n,)


def test_predict_transposes_nhwc_to_nchw():
    class ChannelMeans(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    x = np.random.default_rng(0).normal(size=(5, 4, 6, 3)).astype(np.float32) + np.arange(3, dtype=np.float32)
    out = train.predict(ChannelMeans(), x, batch_size=2)
    np.testing.assert_allclose(out, x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert train.predict(ChannelMeans(), x[:0]).shape == (0,)


# --- loading --------------------------------------------------------------------------------------

@pytest.fixture
def teacher():
    model = zoo.build("ds_cnn", 0.25, (8, 8, 1), 3, "classification")
    with torch.no_grad():  # non-trivial running statistics, so eval-mode BatchNorm is exercised
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(1).normal(size=(5, 8, 8, 1)).astype(np.float32)
    return model.eval(), x


def test_load_exported_program(tmp_path, teacher):
    model, x = teacher
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(2, 1, 8, 8),)), path)  # static batch of 2
    loaded = loading.load(path, None)
    assert train.static_batch(loaded) == 2
    np.testing.assert_allclose(train.predict(loaded, x), train.predict(model, x), atol=1e-5)
    tuned = train.fit(loaded, bands(n=25, validation=0.0), epochs=1, batch_size=8, learning_rate=1e-3, seed=0)
    assert train.predict(tuned, x).shape == (5, 3)


def test_load_exported_program_with_dynamic_batch(tmp_path, teacher):
    model, x = teacher
    path = tmp_path / "model.pt2"
    batch = torch.export.Dim("batch", min=1)
    torch.export.save(torch.export.export(model, (torch.randn(2, 1, 8, 8),), dynamic_shapes=({0: batch},)), path)
    loaded = loading.load(path, None)
    assert train.static_batch(loaded) is None
    np.testing.assert_allclose(train.predict(loaded, x), train.predict(model, x), atol=1e-5)
    # fine-tuning an exported graph switches its batch norms to batch statistics and back
    data = bands()
    tuned = train.fit(loaded, data, epochs=4, batch_size=32, learning_rate=1e-2, seed=0)
    assert (train.predict(tuned, data.x_test).argmax(-1) == data.y_test).mean() >= 0.9
    before, after = weights(loaded), weights(tuned)
    assert not torch.equal(before["stem.1.running_mean"], after["stem.1.running_mean"])
    np.testing.assert_allclose(train.predict(loaded, x), train.predict(model, x), atol=1e-5)  # input untouched


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("suffix,how", [(".pt", "trace"), (".ts", "script")])
def test_load_torchscript(tmp_path, teacher, suffix, how):
    model, x = teacher
    path = tmp_path / f"model{suffix}"
    scripted = torch.jit.trace(model, torch.randn(2, 1, 8, 8)) if how == "trace" else torch.jit.script(model)
    torch.jit.save(scripted, str(path))
    loaded = loading.load(path, None)
    assert not loaded.training
    np.testing.assert_allclose(train.predict(loaded, x), train.predict(model, x), atol=1e-5)
    assert train.param_count(train.clone(loaded)) > 0


FACTORY = '''
from edgekit.backends.torch import zoo

def build_model():
    return zoo.build("ds_cnn", 0.25, (8, 8, 1), 3, "classification")

def wrong_model():
    return zoo.build("ds_cnn", 0.5, (8, 8, 1), 3, "classification")

def not_a_module():
    return 42
'''


@pytest.fixture
def factory_module(tmp_path, monkeypatch):
    (tmp_path / "my_factory_mod.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_factory_mod"
    sys.modules.pop("my_factory_mod", None)


def test_load_state_dict_with_factory(tmp_path, teacher, factory_module):
    model, x = teacher
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    loaded = loading.load(path, f"{factory_module}:build_model")
    assert not loaded.training
    np.testing.assert_allclose(train.predict(loaded, x), train.predict(model, x), atol=1e-6)
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model_state_dict": model.state_dict()}, checkpoint)
    np.testing.assert_allclose(train.predict(loading.load(checkpoint, f"{factory_module}:build_model"), x),
                               train.predict(model, x), atol=1e-6)


def test_refuses_pickled_module(tmp_path, teacher):
    model, _ = teacher
    path, legacy = tmp_path / "full.pt", tmp_path / "legacy.pth"
    torch.save(model, path)
    torch.save(model, legacy, _use_new_zipfile_serialization=False)
    for file in (path, legacy):
        with pytest.raises(InputError, match="arbitrary code") as info:
            loading.load(file, "irrelevant.module:ignored")
        assert "torch.export.save" in str(info.value) and "teacher.factory" in str(info.value)


def test_refuses_state_dict_without_factory(tmp_path, teacher):
    path = tmp_path / "weights.pth"
    torch.save(teacher[0].state_dict(), path)
    with pytest.raises(InputError, match="teacher.factory"):
        loading.load(path, None)


@pytest.mark.parametrize("factory,match", [
    ("no_colon_here", "package.module:function"),
    ("module_that_does_not_exist_xyz:build", "cannot import"),
    ("{mod}:missing", "has no 'missing'"),
    ("{mod}:not_a_module", "not a torch nn.Module"),
    ("{mod}:wrong_model", "does not fit"),
])
def test_bad_factory(tmp_path, teacher, factory_module, factory, match):
    path = tmp_path / "weights.pth"
    torch.save(teacher[0].state_dict(), path)
    with pytest.raises(InputError, match=match) as info:
        loading.load(path, factory.format(mod=factory_module))
    assert "teacher.factory" in str(info.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        loading.load(tmp_path / "nope.pt2", None)
    for name in ("broken.pt", "broken.pt2", "broken.pth"):
        path = tmp_path / name
        path.write_bytes(b"not a torch file" * 8)
        with pytest.raises(InputError, match=name):
            loading.load(path, None)
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(InputError, match="not a torch model file"):
        loading.load(tmp_path / "model.onnx", None)
