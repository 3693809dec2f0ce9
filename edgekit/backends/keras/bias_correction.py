"""Bias correction of a Keras model (`edgekit.bias_correction` has the rule and says why).

The layers corrected are the Conv2D (grouped ones included), DepthwiseConv2D and Dense layers with
a bias, of a functional or Sequential model and of the functional / Sequential models nested in it
(each called once, on one input). Each one's input mean per channel is measured on the float model
over the calibration samples, by a probe model that outputs every such layer's input (a nested
model's layers from its own input, measured in the outer model). Left as they are:
- a layer without a bias (`use_bias=False`): giving it one would mean rebuilding the graph, and
  the BatchNormalization that usually follows it absorbs no correction by itself;
- a layer called more than once (shared weights see several inputs);
- TF-MOT's wrapped layers (a QAT model's QuantizeWrapper): their file's weights come from the
  wrapper's own quantizers, not from the rounding rule corrected here.
The rule holds for the layer's own kernel. A BatchNormalization the converter folds into it rescales
each output channel, which per-channel rounding does not notice (the correction scales with it);
with per-tensor weights folding changes the rounding, and the correction is then approximate.
The model is cloned first: the input model is never changed.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.keras.compat import keras, tf
from edgekit.backends.keras.train import clone
from edgekit.bias_correction import corrected_bias, mean_patch, same_padding

BATCH = 64


def _kind(layer) -> str | None:
    """The rule's kind for a layer it corrects, else None (subclasses such as Conv2DTranspose or
    SeparableConv2D keep their own kernel layouts and are not corrected)."""
    kinds = {keras.layers.Dense: "dense", keras.layers.Conv2D: "conv", keras.layers.DepthwiseConv2D: "depthwise"}
    kind = kinds.get(type(layer))
    return kind if kind is not None and getattr(layer, "use_bias", False) else None


def _w_out(layer, kind: str) -> np.ndarray:
    """The layer's kernel with output channels first, as the rule reads it."""
    kernel = layer.get_weights()[0]
    if kind == "dense":
        return kernel.T  # (in, out) -> (out, in)
    if kind == "conv":
        return kernel.transpose(3, 2, 0, 1)  # (kh, kw, in / groups, out) -> (out, in / groups, kh, kw)
    kh, kw, channels, multiplier = kernel.shape  # output c * multiplier + m reads input channel c
    return kernel.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)


def _called_once(model, layer):
    """The one node that calls `layer` in `model`'s graph, or None when it is called more than once."""
    nodes = [node for i, node in enumerate(layer._inbound_nodes) if f"{layer.name}_ib-{i}" in model._network_nodes]
    return nodes[0] if len(nodes) == 1 and not isinstance(nodes[0].input_tensors, (list, tuple, dict)) else None


def _graph(model) -> bool:
    return isinstance(model, keras.Model) and getattr(model, "_is_graph_network", False) and bool(model.inputs)


def _layer_mean(layer, kind: str, mean_input: np.ndarray) -> np.ndarray:
    """What the rule reads from the layer's input averaged over the samples: a dense layer's mean
    per feature, a convolution's mean patch (its padding, strides and dilation applied)."""
    channels_first = kind != "dense" and getattr(layer, "data_format", None) == "channels_first"
    values = mean_input if channels_first else np.moveaxis(mean_input, -1, 0)  # (channels, ...)
    if kind == "dense":
        return values.reshape(len(values), -1).mean(axis=1)
    kernel, strides, dilation = tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate)
    padding = ((0, 0), (0, 0))
    if layer.padding == "same":
        padding = tuple(same_padding(size, k, s, d)
                        for size, k, s, d in zip(values.shape[1:], kernel, strides, dilation))
    return mean_patch(values, kernel, strides, dilation, padding)


def _input_means(model, x: np.ndarray) -> dict:
    """{layer: what the rule reads of its input's mean over `x` (`_layer_mean`)} for every layer the
    rule corrects of `model` (a graph model) and of the graph models nested in it."""
    layers, nested, tensors = [], [], []
    for layer in model.layers:
        node = _called_once(model, layer)
        if node is not None and _kind(layer):
            layers.append(layer)
            tensors.append(node.input_tensors)
    for layer in model.layers:
        node = _called_once(model, layer)
        if node is not None and _graph(layer) and len(layer.inputs) == 1:
            nested.append(layer)
            tensors.append(node.input_tensors)
    if not tensors:
        return {}
    probe = keras.Model(model.inputs, tensors)  # the layers' inputs, then the nested models'
    sums = [0.0] * len(layers)  # each layer's input summed over the samples (not over positions)
    nested_inputs = [[] for _ in nested]
    for start in range(0, len(x), BATCH):
        outputs = probe(tf.convert_to_tensor(x[start:start + BATCH]), training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for i in range(len(layers)):
            sums[i] = sums[i] + np.asarray(outputs[i], dtype=np.float64).sum(axis=0)
        for j in range(len(nested)):
            nested_inputs[j].append(np.asarray(outputs[len(layers) + j]))
    means = {layer: _layer_mean(layer, _kind(layer), sums[i] / len(x)) for i, layer in enumerate(layers)}
    for layer, arrays in zip(nested, nested_inputs):
        means.update(_input_means(layer, np.concatenate(arrays)))
    return means


def _any_layer(model) -> bool:
    """Whether `model` (a graph model) or a graph model nested in it has a layer the rule corrects,
    found before cloning (a TF-MOT QAT model, which has none, clones only inside its quantize scope)."""
    for layer in model.layers:
        if _called_once(model, layer) is None:
            continue
        if _kind(layer) or (_graph(layer) and len(layer.inputs) == 1 and _any_layer(layer)):
            return True
    return False


def correct_bias(model, samples: np.ndarray, per_channel: bool = True):
    """(a copy of `model` with every bias the rule reaches corrected, one record per layer: its name
    and the largest shift of an output's mean the correction removes), or (`model`, []) when none."""
    if not _graph(model) or len(model.inputs) != 1 or not len(samples) or not _any_layer(model):
        return model, []
    copy = clone(model)
    means = _input_means(copy, np.asarray(samples, dtype=np.float32))
    if not means:
        return model, []
    order = {id(layer): i for i, layer in enumerate(copy._flatten_layers(include_self=False))}
    records = []
    for layer, mean in sorted(means.items(), key=lambda item: order[id(item[0])]):
        kind = _kind(layer)
        weights = layer.get_weights()
        bias = corrected_bias(_w_out(layer, kind), weights[1], mean, kind, per_channel)
        records.append({"layer": layer.name, "largest_shift": float(np.abs(bias - weights[1]).max())})
        weights[1] = bias.astype(weights[1].dtype)
        layer.set_weights(weights)
    return copy, records
