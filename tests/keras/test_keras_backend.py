"""The Keras backend on tiny models built in code: zoo, training on a copy, loading every format,
export at each precision (checked by running the file), compatibility checks."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.backends import get_backend
from edgekit.data import Dataset
from edgekit.formats.registry import get_format
from edgekit.errors import InputError
from edgekit.recipe import QuantizeConfig
from edgekit.runtimes import get_runtime
from edgekit.zoo import ARCHITECTURES, BASES
from tests.helpers import band_dataset

keras_backend = get_backend("keras")


def export(artifact, fmt, path, calibration=None):
    """Write `artifact` as `fmt` with the Keras writer of that format."""
    return get_format(fmt).writer("keras").load()(artifact, path, calibration)


def _dataset(n=240, shape=(8, 8, 1), classes=3, seed=0) -> Dataset:
    return band_dataset(n=n, shape=shape, classes=classes, seed=seed, validation=0.0)


@pytest.fixture(scope="module")
def trained():
    data = _dataset()
    model = keras_backend.build("cnn_tiny", 1.0, data.input_shape, 3, "classification", seed=0)
    return data, keras_backend.train(model, data, epochs=15, batch_size=16, learning_rate=0.01, seed=0)


@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - set(BASES)))  # bases: test_transfer*.py
@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3), (30, 40)])
def test_every_zoo_architecture_builds_for_small_inputs(arch, shape):
    model = keras_backend.build(arch, 0.5, shape, 4, "classification", seed=0)
    assert model.output_shape == (None, 4)
    assert keras_backend.predict(model, np.zeros((2,) + shape, np.float32)).shape == (2, 4)


def test_width_multiplier_scales_parameters():
    small = keras_backend.describe(keras_backend.build("cnn_small", 0.25, (8, 8, 1), 10, "classification", 0))
    large = keras_backend.describe(keras_backend.build("cnn_small", 1.0, (8, 8, 1), 10, "classification", 0))
    assert large["params"] > 8 * small["params"]


def test_training_leaves_the_input_model_untouched(trained):
    data, _ = trained
    model = keras_backend.build("mlp", 0.5, data.input_shape, 3, "classification", seed=0)
    before = [w.copy() for w in model.get_weights()]
    result = keras_backend.train(model, data, epochs=1, batch_size=32, learning_rate=0.01, seed=0)
    assert result is not model
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(before, result.get_weights()))


def test_trained_tiny_model_learns(trained):
    data, model = trained
    accuracy = (keras_backend.predict(model, data.x_test).argmax(1) == data.y_test).mean()
    assert accuracy >= 0.9


@pytest.mark.parametrize("suffix", [".keras", ".h5", ""])
def test_load_round_trips_every_keras_format(trained, tmp_path, suffix):
    data, model = trained
    path = tmp_path / f"model{suffix}"
    model.save(str(path))
    loaded = keras_backend.load(path)
    np.testing.assert_allclose(keras_backend.predict(loaded, data.x_test), keras_backend.predict(model, data.x_test),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("content, name, fragment", [
    (None, "absent.keras", "does not exist"),
    (b"not an hdf5 file", "corrupt.h5", "cannot load the Keras model"),
    (b"x", "model.onnx", "not a Keras model file"),
])
def test_load_errors_name_the_file(tmp_path, content, name, fragment):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=fragment) as info:
        keras_backend.load(path)
    assert name in str(info.value)


def test_directory_without_saved_model_is_refused(tmp_path):
    with pytest.raises(InputError, match="SavedModel"):
        keras_backend.load(tmp_path)


@pytest.mark.parametrize("precision, io, dtype", [
    ("int8", "int8", "int8"), ("int8", "uint8", "uint8"), ("int8", "float32", "float32"),
    ("dynamic", "float32", "float32"), ("float16", "float32", "float32"),
])
def test_tflite_export_honours_the_plan_and_runs(trained, tmp_path, precision, io, dtype):
    data, model = trained
    path = export(Artifact("keras", model, plan=QuantizeConfig(precision=precision, io=io).plan()),
                                "tflite", tmp_path / "m.tflite", data.x_calib)
    session = get_runtime("litert").open(path)
    assert session.inputs[0].dtype == dtype
    assert session.outputs[0].dtype == dtype
    reference = keras_backend.predict(model, data.x_test).argmax(1)
    assert (session.predict(data.x_test).argmax(1) == reference).mean() >= 0.95


def test_int8_tflite_is_much_smaller_than_float(trained, tmp_path):
    data, _ = trained
    model = keras_backend.build("mlp", 2.0, data.input_shape, 3, "classification", seed=0)  # ~50k weights
    float_path = export(Artifact("keras", model), "tflite", tmp_path / "f.tflite")
    int8 = Artifact("keras", model, plan=QuantizeConfig().plan())
    int8_path = export(int8, "tflite", tmp_path / "q.tflite", data.x_calib)
    assert int8_path.stat().st_size < 0.3 * float_path.stat().st_size


def test_onnx_export_and_ort_int8_quantization(trained, tmp_path):
    import onnx

    from edgekit.formats.onnx.quantize import quantize_onnx

    data, model = trained
    float_path = export(Artifact("keras", model), "onnx", tmp_path / "f.onnx")
    int8_path = quantize_onnx(float_path, tmp_path / "q.onnx", QuantizeConfig().plan(), data.x_calib)
    ops = {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    reference = keras_backend.predict(model, data.x_test)
    float_out = get_runtime("onnxruntime").open(float_path).predict(data.x_test)
    np.testing.assert_allclose(float_out, reference, atol=1e-4)
    int8_out = get_runtime("onnxruntime").open(int8_path).predict(data.x_test)
    assert (int8_out.argmax(1) == reference.argmax(1)).mean() >= 0.95


def test_int8_export_without_calibration_is_a_stage_error(trained, tmp_path):
    from edgekit.errors import StageError

    _, model = trained
    with pytest.raises(StageError, match="calibration"):
        export(Artifact("keras", model, plan=QuantizeConfig().plan()), "tflite", tmp_path / "m.tflite",
                             None)


def test_compatibility_checks_shape_and_labels(trained):
    data, model = trained
    keras_backend.check_compatible(model, data, "classification")
    wrong_shape = _dataset(shape=(9, 9, 1))
    with pytest.raises(InputError, match="expects samples of shape"):
        keras_backend.check_compatible(model, wrong_shape, "classification")
    too_many = _dataset(classes=5, shape=(8, 10, 1))
    narrow = keras_backend.build("mlp", 0.5, (8, 10, 1), 3, "classification", seed=0)
    with pytest.raises(InputError, match="class id 4"):
        keras_backend.check_compatible(narrow, too_many, "classification")


@pytest.mark.parametrize("suffix", [".keras", ".h5", ""])
def test_lambda_layers_need_trust_code(tmp_path, suffix):
    from edgekit.backends.keras.compat import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs))
    path = tmp_path / f"lambda{suffix}"
    model.save(str(path))
    with pytest.raises(InputError, match="teacher.trust_code: true") as info:
        keras_backend.load(path)
    assert "Lambda" in str(info.value)
    loaded = keras_backend.load(path, trust_code=True)
    np.testing.assert_allclose(keras_backend.predict(loaded, np.ones((1, 4), np.float32)), 2.0)
