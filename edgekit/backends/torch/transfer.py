"""Transfer learning in torch: pretrained base weights from a local file, freeze, fine-tune.

The base archs (edgekit.zoo.BASES) are `mobilenet_v2` (written in `mobilenet_v2.py` with
torchvision's key names) and, when torchvision is importable, `resnet50` and `efficientnet_b0`
from `torchvision.models` (built with `weights=None`: nothing is downloaded). Validation refuses
the torchvision archs when torchvision is missing (recipe.support.ARCH_PACKAGES).

The *head* of a model is its last top-level submodule with parameters (`classifier` for
MobileNetV2 and EfficientNet, `fc` for ResNet); everything before it is the *base*.
`teacher.build.weights` is a state_dict of the base as torchvision names it (`features.0.0.weight`,
... for MobileNetV2); head keys in the file (a full ImageNet model's 1000-class classifier) are
ignored, every base key must be there with its shape.

`fit(..., freeze)` trains a copy with `freeze="base"` (the base's parameters frozen; its BatchNorm
layers, whose parameters are then all frozen, stay in inference mode: `train.set_mode`) or
`freeze="norm"` (fine-tuning: only BatchNorm frozen). The returned model is trainable throughout.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Optional

from edgekit.errors import InputError
from edgekit.zoo import Head
from edgekit.backends.torch import train
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.mobilenet_v2 import classifier

# torch base archs built by torchvision.models: arch -> (builder name there, attribute of its head)
TORCHVISION = {"resnet50": ("resnet50", "fc"), "efficientnet_b0": ("efficientnet_b0", "classifier")}
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def build_torchvision(arch: str, width: float, input_shape, outputs: int, head: Optional[Head] = None) -> nn.Module:
    """torchvision's `arch` (untrained, `weights=None`) with edgekit's head in place of its classifier."""
    import torchvision.models  # present: validation refuses these archs without it

    name, attribute = TORCHVISION[arch]
    model = getattr(torchvision.models, name)(weights=None)
    old = getattr(model, attribute)
    features = [m for m in old.modules() if isinstance(m, nn.Linear)][0].in_features
    setattr(model, attribute, classifier(features, outputs, head or Head()))
    model.arch, model.width, model.head_config = arch, float(width), head or Head()
    return model.eval()


def head_name(model: nn.Module) -> str:
    """The name of the head: the last top-level submodule that has parameters."""
    named = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    return named[-1]


def _is_head(key: str, head: str) -> bool:
    return key.startswith(head + ".")


def load_base_weights(model: nn.Module, weights: Path, arch: str, width: float) -> None:
    """Load the base's tensors from the state_dict file `weights` into `model`, which must take all
    of them: InputError names the missing, unexpected or misshapen keys."""
    key = "teacher.build.weights"
    try:
        state = torch.load(Path(weights), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError) as exc:
        raise InputError(f"{key}: '{weights}' is not a torch state_dict file: {str(exc).strip()[:200]}. "
                         "Save it with torch.save(model.state_dict(), path).") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{key}: '{weights}' holds no state_dict (a dict of tensors); save it with "
                         "torch.save(model.state_dict(), path).")
    head = head_name(model)
    own = {k: v for k, v in model.state_dict().items() if not _is_head(k, head)}
    given = {k: v for k, v in state.items() if not _is_head(k, head)}
    missing, unexpected = sorted(own.keys() - given.keys()), sorted(given.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & given.keys() if own[k].shape != given[k].shape)
    if missing or unexpected or wrong:
        problems = [f"{label} {names[:4]}{' …' if len(names) > 4 else ''}" for label, names in
                    (("missing keys", missing), ("unexpected keys", unexpected), ("keys of another shape", wrong))
                    if names]
        raise InputError(f"{key}: '{weights}' does not fit the {arch} base of width {width:g}: "
                         f"{'; '.join(problems)}. Give the state_dict of torchvision.models.{arch} at this "
                         f"width (its '{head}.' keys may be left out).")
    model.load_state_dict({**model.state_dict(), **given}, strict=True)


def _freeze(model: nn.Module, freeze: str) -> None:
    """`base`: every base parameter frozen; `norm`: every normalization parameter frozen."""
    head = head_name(model)
    for name, module in model.named_children():
        for inner in module.modules():
            frozen = (freeze == "base" and name != head) or isinstance(inner, _NORMS)
            for parameter in inner.parameters(recurse=False):
                parameter.requires_grad_(not frozen)


def fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train", freeze="base"):
    """Train a copy of `model` with the base frozen (`base`) or only its normalization frozen (`norm`)."""
    trained = train.clone(model)
    _freeze(trained, freeze)
    try:
        train.fit_module(trained, dataset, epochs, batch_size, learning_rate, seed, progress, description)
    finally:
        for parameter in trained.parameters():
            parameter.requires_grad_(True)
    return trained


__all__ = ["TORCHVISION", "build_torchvision", "fit", "head_name", "load_base_weights"]
