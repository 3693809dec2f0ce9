"""Bias correction of Keras models (`Backend.correct_bias`): a copy whose biases, and only they, make
the int8-rounded model's mean outputs those of the float model."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends import get_backend
from edgekit.bias_correction import quantized_weight

pytest.importorskip("tf_keras")

from edgekit.backends.keras.compat import keras  # noqa: E402

backend = get_backend("keras")
SAMPLES = np.random.default_rng(0).uniform(0.0, 1.0, size=(64, 8, 8, 3)).astype(np.float32)


def _model(nested: bool = False, activation: str = "relu"):
    """conv (relu) -> depthwise (multiplier 2) -> conv -> flatten -> dense, each with one output channel
    50 times larger than the others, so per-tensor rounding moves the other channels' means. With
    `nested`, the depthwise and second conv form a functional model inside the outer one; the
    convolutions' `activation` is ReLU or None (a linear model, which then pools globally before its
    dense layer: the per-channel means carry over exactly)."""
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, activation=activation, name="conv_a")(x)
    inner_in = keras.Input((6, 6, 6))
    inner = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(inner_in)
    inner = keras.layers.Conv2D(4, 1, activation=activation, name="conv_b")(inner)
    if nested:
        h = keras.Model(inner_in, inner, name="block")(h)
    else:
        h = keras.layers.Conv2D(4, 1, activation=activation, name="conv_b")(
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(h))
    pool = keras.layers.Flatten() if activation else keras.layers.GlobalAveragePooling2D()
    out = keras.layers.Dense(3, name="dense")(pool(h))
    model = keras.Model(x, out)
    for layer in _layers(model):
        weights = layer.get_weights()
        weights[0][..., 0] *= 50  # the last kernel axis: output channels (depthwise: its multiplier)
        weights[1] = np.random.default_rng(1).normal(size=weights[1].shape).astype(np.float32) * 0.1
        layer.set_weights(weights)
    return model


def _layers(model):
    return [layer for layer in model._flatten_layers(include_self=False) if layer.name in
            ("conv_a", "depthwise", "conv_b", "dense")]


def _rounded(model, per_channel: bool):
    """A copy of `model` with every kernel replaced by its int8-rounded value, as the exporters store it."""
    copy = backend.clone(model)
    for layer in _layers(copy):
        weights = layer.get_weights()
        kernel = weights[0]
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # output c * multiplier + m
            out_first = kernel.transpose(2, 3, 0, 1)
            weights[0] = quantized_weight(out_first.reshape((-1,) + kernel.shape[:2]), per_channel
                                          ).reshape(out_first.shape).transpose(2, 3, 0, 1)
        else:
            weights[0] = np.moveaxis(quantized_weight(np.moveaxis(kernel, -1, 0), per_channel), 0, -1)
        layer.set_weights(weights)
    return copy


def _mean_error(model, reference) -> float:
    return float(np.abs(backend.predict(model, SAMPLES).mean(0) - backend.predict(reference, SAMPLES).mean(0)).mean())


@pytest.mark.parametrize("nested", [False, True])
def test_a_copy_whose_biases_bring_the_rounded_means_back(nested):
    model = _model(nested)
    before = [w.copy() for w in model.get_weights()]
    corrected, records = backend.correct_bias(model, SAMPLES, per_channel=False)

    assert corrected is not model and all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert [r["layer"] for r in records] == ["conv_a", "depthwise", "conv_b", "dense"]
    assert [r["layer"] for r in records] == [n for n in backend.weight_layers(model) if n in
                                             {r["layer"] for r in records}]
    assert all(r["largest_shift"] > 0 for r in records)
    for original, new in zip(_layers(model), _layers(corrected)):  # only the biases changed
        (kernel, bias), (new_kernel, new_bias) = original.get_weights(), new.get_weights()
        assert np.array_equal(kernel, new_kernel) and not np.array_equal(bias, new_bias), original.name

    uncorrected = _mean_error(_rounded(model, False), model)
    assert _mean_error(_rounded(corrected, False), model) < 0.5 * uncorrected, uncorrected


def test_per_channel_rounding_is_corrected_too():
    """Per-channel rounding moves the means far less; on a linear model (no ReLU to turn the rounding
    noise into a mean of its own) the correction brings them back (the depthwise layer's zero padding
    included: the convolutions' mean patches see it)."""
    model = _model(activation=None)
    corrected, records = backend.correct_bias(model, SAMPLES)  # per output channel, the default
    assert len(records) == 4
    uncorrected = _mean_error(_rounded(model, True), model)
    assert _mean_error(_rounded(corrected, True), model) < 0.01 * uncorrected, uncorrected


def test_layers_without_a_bias_are_left_and_a_model_without_any_is_returned_as_it_is():
    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, use_bias=False, name="plain")(x)
    model = keras.Model(x, keras.layers.Dense(2, use_bias=False)(keras.layers.Flatten()(h)))
    assert backend.correct_bias(model, SAMPLES) == (model, [])

    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, use_bias=False, name="no_bias")(x))
    model = keras.Model(x, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(y)))
    _, records = backend.correct_bias(model, SAMPLES)
    assert [r["layer"] for r in records] == ["head"]


def test_a_qat_model_is_returned_as_it_is():
    """TF-MOT wraps every layer (its rounding is its own quantizers'); nothing is cloned or corrected."""
    from edgekit.backends.keras.compat import tfmot

    quantization_aware = tfmot().quantization.keras.quantize_model(_model())
    assert backend.correct_bias(quantization_aware, SAMPLES) == (quantization_aware, [])
