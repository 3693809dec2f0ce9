"""Cross-layer equalization of a torch model (`edgekit.equalization` has the rule and says why).

Pairs are found in the model's torch.fx graph (`torch.fx.symbolic_trace`, or the graph of a
torch.export teacher's GraphModule, whose convolutions are `aten.conv2d` calls on the modules'
weights): an nn.Conv2d (not grouped) or nn.Linear whose only user leads, through ops that commute
with a positive per-channel scale (ReLU, max pooling, dropout, identity, flatten), to an nn.Conv2d
or nn.Linear. A model fx cannot trace (data-dependent control flow, a TorchScript teacher) has no pairs.
The model is deep-copied first: the input model is never changed.
"""

from __future__ import annotations

import copy

import numpy as np

from edgekit.backends.torch.compat import nn, torch
from edgekit.equalization import channels_of_flatten, equalize_pair, imbalance

SWEEPS = 3
_PASS_MODULES = (nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.Identity, nn.Flatten)


def _functions():
    """(functions that pass a channel scale through, the flattening ones, the weight ops)."""
    import torch.nn.functional as F

    aten = torch.ops.aten
    passing = {torch.relu, F.relu, torch.flatten, F.max_pool2d, F.dropout, aten.relu.default, aten.relu_.default,
               aten.max_pool2d.default, aten.dropout.default, aten.flatten.using_ints}
    return passing, {torch.flatten, aten.flatten.using_ints}, {F.conv2d, F.linear, aten.conv2d.default,
                                                               aten.linear.default}


def _weight_module(module) -> bool:
    return isinstance(module, nn.Linear) or (type(module) is nn.Conv2d and module.groups == 1)


def _layer_of(node, modules, weight_functions) -> str | None:
    """The weight module a node computes with: a call of it, or a conv / linear call on its weight."""
    if node.op == "call_module":
        return node.target if _weight_module(modules.get(node.target)) else None
    if node.op == "call_function" and node.target in weight_functions and len(node.args) > 1:
        weight = node.args[1]
        if getattr(weight, "op", None) != "get_attr" or not str(weight.target).endswith(".weight"):
            return None
        path = str(weight.target)[:-len(".weight")]
        groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
        parameter = getattr(modules.get(path), "weight", None)  # an exported program's modules are plain
        return path if isinstance(parameter, torch.Tensor) and parameter.dim() in (2, 4) and groups == 1 else None
    return None


def _step(node, modules, passing_functions, flatten_functions) -> tuple[bool, bool]:
    """(passes a channel scale through, is a flatten) for one fx node."""
    if node.op == "call_module":
        module = modules[node.target]
        return isinstance(module, _PASS_MODULES), isinstance(module, nn.Flatten)
    if node.op == "call_function":
        return node.target in passing_functions, node.target in flatten_functions
    if node.op == "call_method":
        return node.target in ("relu", "relu_", "flatten"), node.target == "flatten"
    return False, False


def pairs(model) -> list[tuple[str, str, bool]]:
    """(first module, second module, whether a flatten sits between them) of every equalizable pair."""
    try:
        graph = model.graph if isinstance(model, torch.fx.GraphModule) else torch.fx.symbolic_trace(model).graph
    except Exception:  # fx cannot trace every model; such a model is not equalized
        return []
    modules = dict(model.named_modules())
    passing, flattening, weight_functions = _functions()
    found = []
    for node in graph.nodes:
        first = _layer_of(node, modules, weight_functions)
        if first is None:
            continue
        flatten, current = False, node
        while len(current.users) == 1:
            (user,) = current.users
            second = _layer_of(user, modules, weight_functions)
            if second is not None:
                found.append((first, second, flatten))
                break
            passes, is_flatten = _step(user, modules, passing, flattening)
            if not passes:
                break
            flatten |= is_flatten
            current = user
    return found


def equalize(model):
    """(an equalized copy of `model`, one record per pair), as the Keras backend's."""
    found = pairs(model)
    if not found:
        return model, []
    equalized = copy.deepcopy(model)
    modules = dict(equalized.named_modules())
    before = {first: imbalance(modules[first].weight.detach().numpy()) for first, _, _ in found}
    with torch.no_grad():
        for _ in range(SWEEPS):
            for first, second, flatten in found:
                _equalize(modules[first], modules[second], flatten)
    records = [{"first": first, "second": second, "imbalance_before": round(before[first], 2),
                "imbalance_after": round(imbalance(modules[first].weight.detach().numpy()), 2)}
               for first, second, _ in found]
    return equalized, records


def _equalize(first, second, flatten: bool) -> None:
    w1 = first.weight.detach().numpy()
    bias = getattr(first, "bias", None)
    b1 = bias.detach().numpy() if bias is not None else None
    w2 = np.moveaxis(second.weight.detach().numpy(), 1, 0)  # input channels first
    channels = w1.shape[0]
    rows = channels_of_flatten(w2.shape[0], channels, channels_last=False) if flatten else np.arange(channels)
    w1e, b1e, w2e, _ = equalize_pair(w1, b1, w2, rows)
    first.weight.copy_(torch.from_numpy(np.ascontiguousarray(w1e)))
    if b1e is not None:
        bias.copy_(torch.from_numpy(np.ascontiguousarray(b1e)))
    second.weight.copy_(torch.from_numpy(np.ascontiguousarray(np.moveaxis(w2e, 0, 1))))
