"""The torch MobileNetV2 (torchvision's layout, written in edgekit since torchvision's wheels do not
import here) and transfer learning in torch: a state_dict with torchvision's key names loads
strictly, a wrong key is refused by name, the base stays frozen while the head trains and moves
when fine-tuned; Keras and torch MobileNetV2 have the same parameter count."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends import get_backend  # noqa: E402
from edgekit.backends.torch import train, transfer, zoo  # noqa: E402
from edgekit.errors import InputError  # noqa: E402
from edgekit.zoo import Head  # noqa: E402
from tests.helpers import colour_dataset  # noqa: E402

torch_backend = get_backend("torch")
SHAPE = (32, 32, 3)
# key names of torchvision.models.mobilenet_v2's state_dict (torchvision 0.2x), spelled out here
TORCHVISION_KEYS = {
    "features.0.0.weight", "features.0.1.running_var", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
    "features.1.conv.2.bias", "features.2.conv.0.0.weight", "features.2.conv.1.0.weight",
    "features.2.conv.2.weight", "features.2.conv.3.num_batches_tracked", "features.17.conv.3.weight",
    "features.18.0.weight", "features.18.1.bias", "classifier.1.weight", "classifier.1.bias",
}


def base_state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A "pretrained" base state_dict (the module's own, perturbed), without the classifier."""
    torch.manual_seed(3)
    model = zoo.build("mobilenet_v2", 0.35, SHAPE, 1000)
    generator = torch.Generator().manual_seed(3)
    state = {k: (v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v)
             for k, v in base_state(model).items()}
    for key in [k for k in state if k.endswith("running_var")]:
        state[key] = state[key].abs() + 0.5
    path = tmp_path_factory.mktemp("base") / "mobilenet_v2_0.35_base.pth"
    torch.save(state, path)
    return path, state


def test_state_dict_keys_are_torchvisions():
    model = zoo.build("mobilenet_v2", 1.0, SHAPE, 1000)
    keys = set(model.state_dict())
    assert TORCHVISION_KEYS <= keys
    assert len([k for k in keys if k.startswith("features.") and k.endswith(".weight")]) == 104
    assert model.features[18][0].out_channels == 1280 and model.classifier[1].in_features == 1280


def test_base_weights_load_strictly(pretrained):
    path, state = pretrained
    model = torch_backend.build("mobilenet_v2", 0.35, SHAPE, 3, "classification", seed=0, weights=path)
    loaded = base_state(model)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert model.classifier[1].out_features == 3


def test_a_wrong_key_is_refused_by_name(pretrained, tmp_path):
    _, state = pretrained
    renamed = dict(state)
    renamed["features.0.0.kernel"] = renamed.pop("features.0.0.weight")
    path = tmp_path / "renamed.pth"
    torch.save(renamed, path)
    with pytest.raises(InputError, match=r"teacher\.build\.weights: .*missing keys \['features\.0\.0\.weight'\]"
                                         r".*unexpected keys \['features\.0\.0\.kernel'\]"):
        torch_backend.build("mobilenet_v2", 0.35, SHAPE, 3, "classification", seed=0, weights=path)
    with pytest.raises(InputError, match="keys of another shape"):
        torch_backend.build("mobilenet_v2", 0.5, SHAPE, 3, "classification", seed=0, weights=pretrained[0])


def test_frozen_base_then_fine_tune(pretrained):
    path, state = pretrained
    data = colour_dataset(n=60)
    model = torch_backend.build("mobilenet_v2", 0.35, SHAPE, 3, "classification", seed=0, weights=path,
                                head=Head(dropout=0.1, dense=(16,)))
    head_before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    frozen = torch_backend.train(model, data, epochs=1, batch_size=16, learning_rate=0.01, seed=0, freeze="base")
    after = base_state(frozen)
    assert all(torch.equal(after[k], state[k]) for k in state)  # BatchNorm running statistics included
    assert not torch.equal(frozen.classifier[0].weight, head_before["0.weight"])
    assert all(p.requires_grad for p in frozen.parameters())

    tuned = torch_backend.train(frozen, data, epochs=1, batch_size=16, learning_rate=1e-3, seed=0, freeze="norm")
    changed = base_state(tuned)
    assert not torch.equal(changed["features.0.0.weight"], state["features.0.0.weight"])
    norms = [name for name, m in tuned.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 52
    assert all(torch.equal(changed[f"{name}.{k}"], state[f"{name}.{k}"]) for name in norms
               for k in ("weight", "bias", "running_mean", "running_var"))
    assert torch.equal(base_state(frozen)["features.0.0.weight"], state["features.0.0.weight"])


def test_mobilenet_v2_traces_with_torch_export():
    model = zoo.build("mobilenet_v2", 0.35, SHAPE, 3)
    x = torch.randn(2, 3, 32, 32)
    program = torch.export.export(model, (x,))
    assert torch.allclose(program.module()(x), model(x), atol=1e-4)


def test_small_inputs_are_refused():
    with pytest.raises(InputError, match="at least 32x32"):
        zoo.build("mobilenet_v2", 0.35, (16, 16, 3), 3)


@pytest.mark.parametrize("width", [0.35, 1.0])
def test_param_count_matches_keras_mobilenet_v2(width):
    try:
        keras_backend = get_backend("keras")
    except ImportError as exc:
        pytest.skip(f"keras backend unavailable: {exc}")
    for head in (None, Head(dense=(64,))):
        keras_model = keras_backend.build("mobilenet_v2", width, SHAPE, 10, "classification", 0, head=head)
        torch_model = zoo.build("mobilenet_v2", width, SHAPE, 10, head=head)
        assert train.param_count(torch_model) == keras_model.count_params(), (width, head)


def test_the_head_is_the_last_module_with_parameters():
    model = zoo.build("mobilenet_v2", 0.35, SHAPE, 3)
    assert transfer.head_name(model) == "classifier"
    out = train.predict(model, np.zeros((2,) + SHAPE, np.float32))
    assert out.shape == (2, 3)
