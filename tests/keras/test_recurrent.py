"""Keras LSTM and GRU classifiers convert to .tflite in every precision and run on LiteRT (issue 11):
a fixed batch of 1, LSTM fused into UNIDIRECTIONAL_SEQUENCE_LSTM (edgekit.formats.tflite.recurrent),
and to a float .onnx with tf2onnx."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.backends import get_backend
from edgekit.backends.keras.compat import keras
from edgekit.formats.inspect import inspect_model
from edgekit.formats.registry import get_format
from edgekit.recipe import QuantizeConfig
from edgekit.runtimes import get_runtime
from tests.helpers import bump_dataset, recurrent_classifier

keras_backend = get_backend("keras")
STEPS, FEATURES, CLASSES = 12, 3, 3  # bump_dataset's defaults


@pytest.fixture(scope="module")
def data():
    return bump_dataset()


@pytest.fixture(scope="module", params=["LSTM", "GRU"])
def trained(request, data):
    model = recurrent_classifier(request.param, data)
    accuracy = (keras_backend.predict(model, data.x_test).argmax(1) == data.y_test).mean()
    assert accuracy >= 0.9, f"the {request.param} teacher did not learn the toy problem ({accuracy:.2f})"
    return request.param, model, accuracy


def export(model, fmt, path, precision=None, io="float32", calibration=None):
    plan = QuantizeConfig(precision=precision, io=io).plan() if precision else None
    return get_format(fmt).writer("keras").load()(Artifact("keras", model, plan=plan), path, calibration)


@pytest.mark.parametrize("precision, io", [
    (None, "float32"), ("int8", "int8"), ("int8", "float32"), ("dynamic", "float32"), ("float16", "float32"),
])
def test_recurrent_tflite_converts_with_batch_one_and_keeps_accuracy(trained, data, tmp_path, precision, io):
    layer, model, accuracy = trained
    path = export(model, "tflite", tmp_path / "m.tflite", precision, io, data.x_calib)
    session = get_runtime("litert").open(path)
    assert session.inputs[0].shape == [1, STEPS, FEATURES]
    assert session.inputs[0].dtype == io
    got = (session.predict(data.x_test).argmax(1) == data.y_test).mean()
    assert got >= accuracy - 0.05, f"{layer} {precision}: LiteRT {got:.3f} vs Keras {accuracy:.3f}"
    info = inspect_model(path)
    if layer == "LSTM":
        assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in info["ops"]
    if precision == "int8":
        assert info["quantization"]["kind"] == "int8 (full integer)"
        assert info["quantization"]["float_ops"] == []


def test_int8_lstm_weights_are_int8(data, tmp_path):
    """Every weight matrix of the fused LSTM (input and recurrent, 4 gates each) is stored as int8."""
    from edgekit.formats.tflite import schema as tflite_schema

    model = recurrent_classifier("LSTM", data, epochs=1)
    path = export(model, "tflite", tmp_path / "q.tflite", "int8", "int8", data.x_calib)
    schema, tfl, _ = tflite_schema.load_model(path)
    subgraph = tfl.Subgraphs(0)
    types = tflite_schema._enum_names(schema.TensorType)
    weights = [subgraph.Tensors(t) for t in range(subgraph.TensorsLength())
               if len(tflite_schema._shape(subgraph.Tensors(t))) == 2
               and tflite_schema._shape(subgraph.Tensors(t))[0] == 16]  # (units, features | units)
    assert len(weights) == 8
    assert {types[w.Type()] for w in weights} == {"INT8"}


@pytest.mark.parametrize("layer", ["LSTM", "GRU"])
def test_dynamic_range_stores_recurrent_weights_as_int8(data, tmp_path, layer):
    """With 64 units (weights over the converter's 1024-element threshold) "dynamic" stores the
    recurrent weights as int8 (the fused LSTM included: edgekit.formats.tflite.recurrent.adjust),
    a much smaller file that still agrees with Keras."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.input_shape), getattr(keras.layers, layer)(64),
                              keras.layers.Dense(CLASSES, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=5, batch_size=32, verbose=0)
    float_path = export(model, "tflite", tmp_path / "f.tflite")
    path = export(model, "tflite", tmp_path / "d.tflite", "dynamic")
    info = inspect_model(path)
    assert info["quantization"]["kind"] == "int8 weights, float activations (dynamic range)"
    assert path.stat().st_size < 0.5 * float_path.stat().st_size
    reference = keras_backend.predict(model, data.x_test).argmax(1)
    assert (get_runtime("litert").open(path).predict(data.x_test).argmax(1) == reference).mean() >= 0.95


def test_non_recurrent_models_keep_a_dynamic_batch(data, tmp_path):
    """Only models with an RNN layer get the fixed batch: a Dense model keeps `from_keras_model`."""
    model = keras.Sequential([keras.Input(data.input_shape), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    path = export(model, "tflite", tmp_path / "d.tflite")
    assert inspect_model(path)["inputs"][0]["shape"][0] in (-1, 1)
    from edgekit.formats.tflite.recurrent import is_recurrent

    assert not is_recurrent(model)


def test_lstm_onnx_float_and_ort_int8(trained, data, tmp_path):
    """tf2onnx writes a float .onnx of the recurrent model that matches Keras; ORT's int8 quantization
    of it runs and keeps the accuracy."""
    from edgekit.formats.onnx.quantize import quantize_onnx

    layer, model, accuracy = trained
    float_path = export(model, "onnx", tmp_path / "f.onnx")
    reference = keras_backend.predict(model, data.x_test)
    np.testing.assert_allclose(get_runtime("onnxruntime").open(float_path).predict(data.x_test), reference, atol=1e-4)
    int8_path = quantize_onnx(float_path, tmp_path / "q.onnx", QuantizeConfig().plan(), data.x_calib)
    got = (get_runtime("onnxruntime").open(int8_path).predict(data.x_test).argmax(1) == data.y_test).mean()
    assert got >= accuracy - 0.05
