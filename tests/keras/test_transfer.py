"""Transfer learning in Keras (issue 11, point 6): a keras.applications MobileNetV2 base whose
"pretrained" weights the test saves itself (no network), loaded from that file, trained with the
base frozen, then fine-tuned with only BatchNorm frozen."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends import get_backend
from edgekit.backends.keras import transfer
from edgekit.backends.keras.compat import keras
from edgekit.errors import InputError
from edgekit.zoo import Head
from tests.helpers import colour_dataset, save_pretrained_mobilenet_v2

keras_backend = get_backend("keras")
WIDTH = 0.35
SHAPE = (32, 32, 3)


@pytest.fixture(scope="module")
def data():
    return colour_dataset(n=240)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("base") / "mobilenet_v2_0.35_no_top.h5"
    return path, save_pretrained_mobilenet_v2(path, WIDTH, data=colour_dataset(n=180, seed=5))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _base_weights(model) -> dict:
    return {layer.name: layer.get_weights() for layer in transfer.base_layers(model) if layer.get_weights()}


def test_the_base_is_loaded_from_the_file_not_random(pretrained):
    path, saved = pretrained
    model = keras_backend.build("mobilenet_v2", WIDTH, SHAPE, 3, "classification", seed=0, weights=path)
    loaded = _base_weights(model)
    assert loaded.keys() == saved.keys() and len(saved) > 50
    assert all(_same(loaded[name], saved[name]) for name in saved)
    fresh = _base_weights(keras_backend.build("mobilenet_v2", WIDTH, SHAPE, 3, "classification", seed=0))
    assert not _same(fresh["Conv1"], saved["Conv1"])


def test_head_schema_gives_dense_dropout_and_output(pretrained):
    model = keras_backend.build("mobilenet_v2", WIDTH, SHAPE, 3, "classification", seed=0,
                                head=Head(dropout=0.3, dense=(32,)))
    head = [layer for layer in model.layers if transfer.is_head(layer)]
    assert [type(layer).__name__ for layer in head] == ["GlobalAveragePooling2D", "Dense", "Dropout", "Dense"]
    assert head[1].units == 32 and head[2].rate == 0.3 and model.output_shape == (None, 3)


def test_frozen_base_then_fine_tune(pretrained, data):
    path, saved = pretrained
    model = keras_backend.build("mobilenet_v2", WIDTH, SHAPE, 3, "classification", seed=0, weights=path)
    head_before = model.get_layer("logits").get_weights()
    frozen = keras_backend.train(model, data, epochs=2, batch_size=32, learning_rate=0.01, seed=0, freeze="base")
    after = _base_weights(frozen)
    assert all(_same(after[name], saved[name]) for name in saved)  # BatchNorm statistics included
    assert not _same(frozen.get_layer("logits").get_weights(), head_before)
    assert all(layer.trainable for layer in frozen.layers)  # later stages train all of it
    accuracy = float(np.mean(keras_backend.predict(frozen, data.x_test).argmax(-1) == data.y_test))
    assert accuracy >= 0.6, accuracy

    tuned = keras_backend.train(frozen, data, epochs=1, batch_size=32, learning_rate=1e-3, seed=0, freeze="norm")
    changed = _base_weights(tuned)
    assert not _same(changed["Conv1"], saved["Conv1"])
    norms = [layer.name for layer in transfer.base_layers(tuned) if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(_same(changed[name], saved[name]) for name in norms)
    assert _same(_base_weights(frozen)["Conv1"], saved["Conv1"])  # the input model is untouched


def test_weights_of_another_width_are_refused(tmp_path):
    wrong = tmp_path / "wide.h5"
    save_pretrained_mobilenet_v2(wrong, 0.5)
    with pytest.raises(InputError, match=r"teacher\.build\.weights: .*width 0\.35"):
        keras_backend.build("mobilenet_v2", WIDTH, SHAPE, 3, "classification", seed=0, weights=wrong)


@pytest.mark.parametrize("shape, message", [((16, 16, 3), "at least 32x32"), ((32, 32, 1), "RGB")])
def test_inputs_the_base_cannot_take_are_refused(pretrained, shape, message):
    with pytest.raises(InputError, match=message):
        keras_backend.build("mobilenet_v2", WIDTH, shape, 3, "classification", seed=0, weights=pretrained[0])


def test_mobilenet_v2_is_a_zoo_arch_without_weights():
    model = keras_backend.build("mobilenet_v2", 1.0, (32, 32, 1), 4, "classification", seed=0)
    assert model.output_shape == (None, 4)
    assert model.count_params() == 2_257_984 - 864 + 288 + 1280 * 4 + 4  # applications' base, 1 channel, head


@pytest.mark.parametrize("arch", ["resnet50", "efficientnet_b0"])
def test_the_other_bases_build_with_the_head(arch):
    model = keras_backend.build(arch, 1.0, SHAPE, 3, "classification", seed=0, head=Head(dropout=0.0, dense=(8,)))
    assert model.output_shape == (None, 3) and len(transfer.base_layers(model)) > 100
    assert [layer.name for layer in model.layers if transfer.is_head(layer)] == ["head_pool", "head_dense1", "logits"]
