"""Structured channel pruning (edgekit.backends.keras.channels) on tiny models built in code: it shrinks
every chain-shaped zoo model, slices exactly (removing all-zero filters leaves outputs unchanged), never
touches the input model, refuses graphs it cannot handle by naming the layer, and fine-tuning recovers."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.keras import channels, train, zoo
from edgekit.backends.keras.compat import keras
from edgekit.data import Dataset
from edgekit.errors import InputError
from tests.helpers import band_dataset

L = keras.layers
CHAIN_ARCHS = ["cnn_small", "cnn_tiny", "mlp", "ds_cnn", "mobilenet_v1"]


def _sequential():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, padding="same"), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2),
        L.Conv2D(12, 3, strides=2, use_bias=True), L.Flatten(),
        L.Dense(16, activation="relu"), L.Dropout(0.3), L.Dense(3),
    ], name="hand_built")


def _model(arch, shape=(8, 8, 1), outputs=3):
    keras.utils.set_random_seed(0)
    return _sequential() if arch == "sequential" else zoo.build(arch, 0.5, shape, outputs, "classification")


def _randomize_batchnorm(model, rng):
    """Trained-looking BN statistics, so the exactness test covers gamma/beta/mean/var slicing."""
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.normal(0, 0.5, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.5, 2, c)])


def _zero_filters(model, prunable, sparsity, rng):
    """Zero `round(sparsity * n)` random filters of each prunable layer, and every per-channel weight
    that would turn a zero channel non-zero before the next producer (bias, BN gamma and beta)."""
    zeroed = np.array([], dtype=int)
    for layer in model.layers:
        weights = layer.get_weights()
        producer = isinstance(layer, (L.Conv1D, L.Conv2D, L.Dense, L.SeparableConv2D))
        if producer and not isinstance(layer, L.DepthwiseConv2D):
            zeroed = np.array([], dtype=int)
            if layer.name in prunable:
                filters = weights[1:] if isinstance(layer, L.SeparableConv2D) else weights  # not the depthwise
                n = filters[0].shape[-1]
                zeroed = rng.choice(n, int(sparsity * n + 0.5), replace=False)
                for w in filters:
                    w[..., zeroed] = 0.0
        elif isinstance(layer, L.DepthwiseConv2D) and len(weights) > 1:
            weights[1][zeroed] = 0.0
        elif isinstance(layer, L.BatchNormalization):
            weights[0][zeroed] = 0.0
            weights[1][zeroed] = 0.0
        if weights:
            layer.set_weights(weights)


def _toy_dataset(n=300, shape=(8, 8, 1), classes=3, seed=0) -> Dataset:
    return band_dataset(n=n, shape=shape, classes=classes, seed=seed, validation=0.0)


@pytest.mark.parametrize("arch", CHAIN_ARCHS + ["sequential"])
def test_pruning_half_the_channels_shrinks_the_model_and_leaves_the_original_alone(arch):
    model = _model(arch)
    before = [w.copy() for w in model.get_weights()]

    pruned, info = channels.prune_channels(model, 0.5)

    assert pruned is not model and pruned.name == model.name
    assert info["params_before"] == model.count_params()
    assert info["params_after"] == pruned.count_params() <= 0.6 * info["params_before"]
    assert pruned.output_shape == model.output_shape and pruned.input_shape == model.input_shape
    assert pruned.layers[-1].name == model.layers[-1].name
    assert pruned.layers[-1].get_config()["units"] == model.layers[-1].get_config()["units"]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    for name, widths in info["layers"].items():
        assert widths["after"] == widths["before"] - int(0.5 * widths["before"] + 0.5)
    x = np.random.default_rng(0).normal(size=(2,) + model.input_shape[1:]).astype(np.float32)
    assert pruned(x).shape == (2, 3)


@pytest.mark.parametrize("arch", CHAIN_ARCHS + ["sequential"])
def test_removing_all_zero_filters_leaves_outputs_unchanged(arch):
    rng = np.random.default_rng(1)
    model = _model(arch)
    _randomize_batchnorm(model, rng)
    prunable = channels.check_prunable(model)
    _zero_filters(model, prunable, 0.5, rng)
    x = rng.normal(size=(4,) + model.input_shape[1:]).astype(np.float32)

    pruned, info = channels.prune_channels(model, 0.5)

    assert sorted(info["layers"]) == sorted(prunable)
    np.testing.assert_allclose(pruned(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-5)


def test_flatten_rows_follow_kept_channels_at_every_position():
    """cnn_small on a 30x40 input: Flatten over a 15x20 map, so a wrong row order would show."""
    rng = np.random.default_rng(2)
    model = _model("cnn_small", shape=(30, 40))
    _zero_filters(model, channels.check_prunable(model), 0.25, rng)
    x = rng.normal(size=(2, 30, 40)).astype(np.float32)

    pruned, _ = channels.prune_channels(model, 0.25)

    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), atol=1e-5)


def test_separable_conv1d_and_reshapes_are_sliced_exactly_and_softmax_keeps_its_producer():
    """A Reshape that keeps the channel axis passes pruned channels through; one that moves it, or a
    Softmax over channels, keeps the producer before it whole."""
    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = L.SeparableConv2D(8, 3, padding="same", name="sep")(inputs)
    x = L.BatchNormalization()(x)
    x = L.Reshape((64, 8), name="rows")(x)
    x = L.Conv1D(6, 3, name="c1")(x)
    x = L.Reshape((62 * 6 // 4, 4), name="mixes")(x)
    x = L.Conv1D(5, 1, name="c2")(x)
    x = L.Softmax(name="over_channels")(x)
    x = L.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, L.Dense(3, name="out")(x))
    _randomize_batchnorm(model, rng)
    _zero_filters(model, ["sep"], 0.5, rng)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)

    assert channels.check_prunable(model) == ["sep"]
    pruned, info = channels.prune_channels(model, 0.5)

    assert info["layers"] == {"sep": {"before": 8, "after": 4}}
    assert pruned.get_layer("rows").output_shape == (None, 64, 4)
    np.testing.assert_allclose(pruned(x).numpy(), model(x).numpy(), atol=1e-5)


def test_check_prunable_names_the_hidden_layers_of_cnn_small():
    model = zoo.build("cnn_small", 1.0, (8, 8, 1), 10, "classification")
    convs = [layer.name for layer in model.layers if isinstance(layer, L.Conv2D)]
    dense = [layer.name for layer in model.layers if isinstance(layer, L.Dense)]

    names = channels.check_prunable(model)

    assert names == convs + dense[:1]  # the logits layer keeps its width


def test_lowest_norm_filters_are_removed_and_weights_copied():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = L.Dense(4, name="hidden")(inputs)
    model = keras.Model(inputs, L.Dense(2, name="out")(hidden))
    kernel = np.arange(16, dtype=np.float32).reshape(4, 4) * np.array([1.0, -0.01, 0.5, 0.02], np.float32)
    model.get_layer("hidden").set_weights([kernel, np.arange(4, dtype=np.float32)])

    pruned, info = channels.prune_channels(model, 0.5)

    assert info["layers"] == {"hidden": {"before": 4, "after": 2}}
    np.testing.assert_array_equal(pruned.get_layer("hidden").get_weights()[0], kernel[:, [0, 2]])
    np.testing.assert_array_equal(pruned.get_layer("hidden").get_weights()[1], [0.0, 2.0])
    np.testing.assert_array_equal(pruned.get_layer("out").get_weights()[0],
                                  model.get_layer("out").get_weights()[0][[0, 2]])


def test_resnet8_is_refused_at_its_add_layer():
    model = zoo.build("resnet8", 0.5, (8, 8, 1), 3, "classification")
    with pytest.raises(InputError, match=r"layer 'add(_\d+)?' \(Add\): residual"):
        channels.check_prunable(model)
    with pytest.raises(InputError, match=r"\(Add\)"):
        channels.prune_channels(model, 0.5)


def _functional(make):
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(make(inputs))))


@pytest.mark.parametrize("make, pattern", [
    (lambda x: L.Lambda(lambda t: t * 2.0, name="double")(L.Conv2D(4, 3)(x)), r"'double' \(Lambda\)"),
    (lambda x: L.Concatenate(name="cat")([L.Conv2D(4, 3)(x), L.Conv2D(4, 3)(x)]), r"'cat' \(Concatenate\)"),
    (lambda x: L.Conv2D(4, 3, groups=2, name="grouped")(L.Conv2D(4, 3)(x)), r"'grouped'.*grouped convolution"),
    (lambda x: L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x), r"'dw'.*depth_multiplier"),
    (lambda x: L.BatchNormalization(axis=1, name="bn_rows")(L.Conv2D(4, 3)(x)), r"'bn_rows'.*other than the channels"),
    (lambda x: L.LayerNormalization(name="ln")(L.Conv2D(4, 3)(x)), r"'ln' \(LayerNormalization\)"),
])
def test_unsupported_layers_are_refused_by_name(make, pattern):
    model = _functional(make)
    with pytest.raises(InputError, match=pattern):
        channels.check_prunable(model)


def test_multi_output_and_shared_layers_are_refused_but_calls_outside_the_model_are_ignored():
    inputs = keras.Input((8,))
    split = L.Dense(4, name="split")(inputs)
    fan_out = keras.Model(inputs, [L.Dense(2)(split), L.Dense(2)(split)])
    shared_layer = L.Dense(8, name="twice")
    shared = keras.Model(inputs, L.Dense(2)(shared_layer(shared_layer(inputs))))
    chain = keras.Model(inputs, L.Dense(2)(L.Dense(4, name="a")(split)))  # split's other calls are elsewhere

    with pytest.raises(InputError, match="outputs"):
        channels.check_prunable(fan_out)
    with pytest.raises(InputError, match=r"'twice'.*shared"):
        channels.check_prunable(shared)
    assert channels.check_prunable(chain) == ["split", "a"]


def test_bad_arguments_are_input_errors():
    model = _model("mlp")
    with pytest.raises(InputError, match="sparsity"):
        channels.prune_channels(model, 1.0)
    with pytest.raises(InputError, match="importance"):
        channels.prune_channels(model, 0.5, importance="taylor")


def test_fine_tuning_recovers_accuracy_after_pruning_half_the_channels():
    data = _toy_dataset()
    model = train.fit(_model("cnn_small"), data, epochs=8, batch_size=16, learning_rate=0.01, seed=0)

    pruned, info = channels.prune_channels(model, 0.5)
    tuned = train.fit(pruned, data, epochs=4, batch_size=16, learning_rate=0.005, seed=0)

    accuracy = float(np.mean(train.predict(tuned, data.x_test).argmax(axis=1) == data.y_test))
    assert info["params_after"] < 0.6 * info["params_before"]
    assert tuned.count_params() == info["params_after"]
    assert accuracy >= 0.9
