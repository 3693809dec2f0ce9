"""Structured channel pruning: remove whole output filters so the model that ships is smaller and dense.

Unstructured sparsity only shrinks a file when a runtime reads sparse tensors; removing filters makes
every later tensor narrower, so size and latency drop on any runtime. The catch is that a filter can
only be removed when every consumer of its channel can drop the matching input: that is easy along a
chain of layers and unsafe wherever tensors are joined (Add, Concatenate) or code is opaque (Lambda,
custom layers), which are refused with the layer named.

    >>> from edgekit.backends.keras import channels, zoo
    >>> model = zoo.build("cnn_small", 1.0, (8, 8, 1), 10, "classification")
    >>> channels.check_prunable(model)
    ['conv2d', 'conv2d_1', 'dense']
    >>> smaller, info = channels.prune_channels(model, 0.5)
    >>> info["layers"]["conv2d"]
    {'before': 32, 'after': 16}

Importance: the L2 norm of each output filter's kernel (over every axis but the last; for
SeparableConv2D its pointwise kernel). When a BatchNormalization directly follows the layer, the norm
is multiplied by BN's effective per-channel scale |gamma| / sqrt(moving_variance + epsilon), since that
is the factor the channel is actually multiplied by before the next layer (the "network slimming"
criterion generalized to trained statistics). `importance="l1"` uses the L1 norm instead.
In each prunable layer `round(sparsity * channels)` (half up) filters with the lowest importance are
removed, always keeping at least one; the layer that produces the model's output is never pruned.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import InputError
from edgekit.backends.keras.compat import keras

L = keras.layers
_HINT = "channel pruning cannot remove channels here. Use structure: unstructured or 2:4"

# Layers that choose their own output channels (kernel [..., in, out], bias [out]).
_PRODUCERS = (L.Conv1D, L.Conv2D, L.Dense, L.SeparableConv2D)
# Layers with per-channel weights that follow the channels of their input.
_FOLLOWERS = (L.DepthwiseConv2D, L.BatchNormalization)
# Layers that act on every channel independently and have no weights.
_PASSTHROUGH = (L.ReLU, L.Activation, L.LeakyReLU, L.ELU, L.Softmax, L.Dropout, L.SpatialDropout2D,
                L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D,
                L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalMaxPooling1D,
                L.GlobalMaxPooling2D, L.ZeroPadding1D, L.ZeroPadding2D, L.Cropping2D)
_RESHAPING = (L.Flatten, L.Reshape)
_SUPPORTED = _PRODUCERS + _FOLLOWERS + _PASSTHROUGH + _RESHAPING

_WHY = {
    "Add": "residual connections join channels of several layers",
    "Subtract": "it joins channels of several layers",
    "Multiply": "it joins channels of several layers",
    "Average": "it joins channels of several layers",
    "Maximum": "it joins channels of several layers",
    "Concatenate": "it stacks channels of several layers, so their indices depend on each other",
    "Lambda": "its Python code cannot be inspected for how it uses channels",
}
_SOFTMAX = ("softmax", "log_softmax")


def _refuse(layer, why: str):
    raise InputError(f"layer '{layer.name}' ({type(layer).__name__}): {why}; {_HINT}")


def _check_layer(layer):
    """Refuse a layer whose type or settings channel slicing cannot handle."""
    name = type(layer).__name__
    if isinstance(layer, keras.Model):
        _refuse(layer, "nested models are not analysed; build the model flat")
    if type(layer) not in _SUPPORTED:  # exact types: a subclass may use channels in its own way
        _refuse(layer, _WHY.get(name, "this layer type is not supported by channel pruning"))
    cfg = layer.get_config()
    if cfg.get("data_format") == "channels_first":
        _refuse(layer, "channels_first layout is not supported")
    if cfg.get("groups", 1) != 1:
        _refuse(layer, "grouped convolution ties channels of different groups together")
    if cfg.get("depth_multiplier", 1) != 1:
        _refuse(layer, "depth_multiplier > 1 makes several output channels per input channel")


def _mixes_channels(layer) -> bool:
    """True when a layer needs all of its input channels (softmax, a Reshape that moves the channel axis)."""
    if isinstance(layer, L.Activation) and layer.get_config()["activation"] in _SOFTMAX:
        return True
    if isinstance(layer, L.Softmax):
        return True
    return isinstance(layer, L.Reshape) and layer.input_shape[-1] != layer.output_shape[-1]


def _chain(model) -> list:
    """The model's layers in order from input to output, or InputError where the graph is not a chain."""
    if not getattr(model, "_is_graph_network", False):
        raise InputError(f"model '{model.name}': a subclassed or unbuilt model has no layer graph to prune; "
                         "build it from keras.Input (Sequential: give an input shape). " + _HINT)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"model '{model.name}' has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "channel pruning needs one of each. " + _HINT)
    start = model.inputs[0]._keras_history.layer
    end = model.outputs[0]._keras_history.layer
    consumers: dict[str, list] = {}
    for layer in [start] + [lr for lr in model.layers if lr is not start]:
        nodes = [n for i, n in enumerate(layer._inbound_nodes) if f"{layer.name}_ib-{i}" in model._network_nodes]
        if len(nodes) > 1:
            _refuse(layer, f"the layer is shared between {len(nodes)} calls")
        for node in nodes:
            parents = node.inbound_layers if isinstance(node.inbound_layers, list) else [node.inbound_layers]
            if len(parents) > 1:
                _refuse(layer, f"it takes {len(parents)} inputs")
            for parent in parents:
                consumers.setdefault(parent.name, []).append(layer)
    chain, layer = [], start
    while layer is not end:
        following = consumers.get(layer.name, [])
        if len(following) != 1:
            _refuse(layer, f"its output feeds {len(following)} layers" if following
                    else "it does not lead to the output")
        layer = following[0]
        chain.append(layer)
    return chain


def _plan(model) -> tuple[list, list[str]]:
    """(chain without the input layer, names of prunable layers in order)."""
    for layer in model.layers:  # type checks first, so e.g. resnet8 is refused at its Add, not its fan-out
        if not isinstance(layer, L.InputLayer):
            _check_layer(layer)
    chain = _chain(model)
    prunable: list[str] = []
    owner = None  # the producer whose filters are the current tensor's channels
    for layer in chain:  # layers in the chain have one call, so their input shape is defined
        if isinstance(layer, L.BatchNormalization) and list(np.ravel(layer.axis)) not in (
                [-1], [len(layer.input_shape) - 1]):
            _refuse(layer, "BatchNormalization normalizes an axis other than the channels (last) axis")
        if _mixes_channels(layer):
            prunable = [name for name in prunable if name != owner]
            owner = None
        if isinstance(layer, _PRODUCERS):
            owner = layer.name
            if layer.get_config().get("activation") not in _SOFTMAX:
                prunable.append(layer.name)
    return chain, [name for name in prunable if name != owner]  # the output layer's width is the classes


def check_prunable(model) -> list[str]:
    """Names of the layers whose output channels `prune_channels` would remove; InputError otherwise.

    Reads only the graph and configs: nothing is modified, built or trained.
    """
    return _plan(model)[1]


def _importance(layer, following, norm: str) -> np.ndarray:
    """Per-output-channel importance of a producer (see the module docstring)."""
    kernel = layer.get_weights()[1 if isinstance(layer, L.SeparableConv2D) else 0]
    flat = np.abs(kernel.reshape(-1, kernel.shape[-1]))
    score = flat.sum(axis=0) if norm == "l1" else np.sqrt((flat ** 2).sum(axis=0))
    if isinstance(following, L.BatchNormalization):
        gamma = following.gamma.numpy() if following.scale else 1.0
        score = score * np.abs(gamma) / np.sqrt(following.moving_variance.numpy() + following.epsilon)
    return score


def _choose(score: np.ndarray, sparsity: float) -> np.ndarray:
    """Sorted indices of the channels kept: all but the round(sparsity * n) least important, at least 1."""
    n = len(score)
    kept = max(1, n - int(sparsity * n + 0.5))
    return np.sort(np.argsort(score, kind="stable")[n - kept:])


def _slice(layer, keep_in, keep_out, cfg) -> list[np.ndarray]:
    """The layer's weights restricted to the kept input and output channels (None = all)."""
    weights = layer.get_weights()
    pick = (lambda w, idx, axis: w if idx is None else np.take(w, idx, axis=axis))
    if isinstance(layer, L.BatchNormalization):
        return [pick(w, keep_in, 0) for w in weights]
    if isinstance(layer, L.DepthwiseConv2D):
        return [pick(weights[0], keep_in, 2)] + [pick(b, keep_in, 0) for b in weights[1:]]
    if isinstance(layer, L.SeparableConv2D):
        depthwise, pointwise, *bias = weights
        depthwise, pointwise = pick(depthwise, keep_in, 2), pick(pick(pointwise, keep_in, 2), keep_out, 3)
        return [depthwise, pointwise] + [pick(b, keep_out, 0) for b in bias]
    kernel, *bias = weights  # Dense / Conv: [..., in, out]
    kernel = pick(pick(kernel, keep_in, kernel.ndim - 2), keep_out, kernel.ndim - 1)
    return [kernel] + [pick(b, keep_out, 0) for b in bias]


def prune_channels(model, sparsity: float, importance: str = "l2"):
    """A new, smaller dense model with the least important filters of each prunable layer removed.

    Returns `(new_model, info)` with `info = {"layers": {name: {"before": c, "after": k}},
    "params_before": n, "params_after": m}`. Consumers lose the matching input channels (a Dense after
    Flatten loses the rows of those channels at every spatial position, channels-last order); BN and
    DepthwiseConv2D weights follow their input channels. Kept weights are copied, layer names kept;
    `model` is not modified. Fine-tune the result to recover accuracy.
    """
    if not 0.0 <= float(sparsity) < 1.0:
        raise InputError(f"channel sparsity must be in [0, 1), got {sparsity}")
    if importance not in ("l2", "l1"):
        raise InputError(f"channel importance must be 'l2' or 'l1', got {importance!r}")
    chain, prunable = _plan(model)
    source = model.inputs[0]._keras_history.layer
    x = inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype, name=source.name)
    keep, info = None, {}
    for i, layer in enumerate(chain):
        cfg = layer.get_config()
        keep_out = keep
        if isinstance(layer, _PRODUCERS):
            keep_out = None
            if layer.name in prunable:
                following = chain[i + 1] if i + 1 < len(chain) else None
                keep_out = _choose(_importance(layer, following, importance), sparsity)
                width = "units" if isinstance(layer, L.Dense) else "filters"
                info[layer.name] = {"before": int(cfg[width]), "after": int(len(keep_out))}
                cfg[width] = int(len(keep_out))
        elif isinstance(layer, L.Flatten) and keep is not None:
            shape = layer.input_shape
            positions, width = int(np.prod(shape[1:-1], dtype=np.int64)), shape[-1]
            keep_out = (np.arange(positions)[:, None] * width + keep[None, :]).ravel()
        elif isinstance(layer, L.Reshape) and keep is not None:
            cfg["target_shape"] = tuple(cfg["target_shape"][:-1]) + (len(keep),)
        weights = _slice(layer, keep, keep_out, cfg) if isinstance(layer, _PRODUCERS + _FOLLOWERS) else []
        new_layer = type(layer).from_config(cfg)
        x = new_layer(x)
        if weights:
            new_layer.set_weights(weights)
        keep = keep_out
    pruned = keras.Model(inputs, x, name=model.name)
    return pruned, {"layers": info, "params_before": int(model.count_params()),
                    "params_after": int(pruned.count_params())}


__all__ = ["check_prunable", "prune_channels"]
