"""Cross-layer equalization of a Keras model (`edgekit.equalization` has the rule and says why).

Pairs are found in the model's functional graph: a Conv2D (not grouped) or Dense whose activation
is ReLU or linear, whose only consumer leads, through layers that commute with a positive
per-channel scale (ReLU, max pooling, dropout, zero padding, flatten), to a Conv2D or Dense. The
model is cloned first: the input model is never changed.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.keras.compat import keras
from edgekit.backends.keras.train import clone
from edgekit.equalization import channels_of_flatten, equalize_pair, imbalance

SWEEPS = 3  # a chain of layers is equalized pair by pair; a few passes settle it
_HOMOGENEOUS = ("relu", "linear")


def _activation(layer) -> str | None:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None)


def _weight_layer(layer) -> bool:
    if isinstance(layer, keras.layers.Dense):
        return True
    return type(layer) is keras.layers.Conv2D and getattr(layer, "groups", 1) == 1


def _passes_through(layer) -> bool:
    """Whether `layer` commutes with a positive scale of each channel."""
    if isinstance(layer, keras.layers.ReLU):
        return not layer.max_value and not layer.negative_slope and not layer.threshold
    if isinstance(layer, keras.layers.Activation):
        return _activation(layer) in _HOMOGENEOUS
    return isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.Dropout, keras.layers.ZeroPadding2D,
                              keras.layers.Flatten))


def _only_consumer(model, layer):
    nodes = [n for n in layer._outbound_nodes if n.outbound_layer in model.layers]
    if len(nodes) != 1 or any(layer is out._keras_history.layer for out in model.outputs):
        return None
    return nodes[0].outbound_layer


def pairs(model) -> list[tuple[str, str, bool]]:
    """(first layer, second layer, whether a flatten sits between them) of every equalizable pair."""
    found = []
    for layer in model.layers:
        if not _weight_layer(layer) or _activation(layer) not in _HOMOGENEOUS:
            continue
        flatten, nxt = False, _only_consumer(model, layer)
        while nxt is not None and not _weight_layer(nxt) and _passes_through(nxt):
            flatten |= isinstance(nxt, keras.layers.Flatten)
            nxt = _only_consumer(model, nxt)
        if nxt is not None and _weight_layer(nxt):
            found.append((layer.name, nxt.name, flatten))
    return found


def equalize(model):
    """(an equalized copy of `model`, one record per pair: names, largest / median channel range of
    the first weight before and after)."""
    found = pairs(model)
    if not found:
        return model, []
    copy = clone(model)
    before = {first: imbalance(_out_first(copy.get_layer(first))) for first, _, _ in found}
    for _ in range(SWEEPS):
        for first, second, flatten in found:
            _equalize(copy.get_layer(first), copy.get_layer(second), flatten)
    records = [{"first": first, "second": second, "imbalance_before": round(before[first], 2),
                "imbalance_after": round(imbalance(_out_first(copy.get_layer(first))), 2)}
               for first, second, _ in found]
    return copy, records


def _out_first(layer):
    kernel = layer.get_weights()[0]
    return kernel.T if kernel.ndim == 2 else kernel.transpose(3, 0, 1, 2)


def _equalize(first, second, flatten: bool) -> None:
    weights1, weights2 = first.get_weights(), second.get_weights()
    kernel1, bias1 = weights1[0], (weights1[1] if first.use_bias else None)
    w1 = kernel1.T if kernel1.ndim == 2 else kernel1.transpose(3, 0, 1, 2)
    kernel2 = weights2[0]
    w2 = kernel2 if kernel2.ndim == 2 else kernel2.transpose(2, 0, 1, 3)
    channels = w1.shape[0]
    rows = channels_of_flatten(w2.shape[0], channels, channels_last=True) if flatten else np.arange(channels)
    w1e, b1e, w2e, _ = equalize_pair(w1, bias1, w2, rows)
    weights1[0] = w1e.T if kernel1.ndim == 2 else w1e.transpose(1, 2, 3, 0)
    if bias1 is not None:
        weights1[1] = b1e
    weights2[0] = w2e if kernel2.ndim == 2 else w2e.transpose(1, 2, 0, 3)
    first.set_weights(weights1)
    second.set_weights(weights2)
