"""`edgekit bench` on a real int8 .tflite (TFLM hello_world from ../shared/models, else one built here with
TensorFlow) and an .onnx built with onnx.helper, through click's CliRunner with --json.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.bench import bench_command
from tests.helpers import SHARED_MODELS

HELLO_WORLD = SHARED_MODELS / "tflm" / "hello_world_int8.tflite"


def invoke(*args):
    return CliRunner().invoke(bench_command, [str(a) for a in args], catch_exceptions=False)


def bench_json(*args) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def tflite_int8(tmp_path_factory) -> Path:
    """An int8-I/O .tflite with input [-1, 1]: the TFLM sine model, or a 1->8->1 dense net made here."""
    if HELLO_WORLD.is_file():
        return HELLO_WORLD
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    pytest.importorskip("tensorflow", reason=f"neither {HELLO_WORLD} nor TensorFlow to build an int8 model")
    from edgekit.backends.keras.compat import keras, tf

    model = keras.Sequential([keras.layers.Input((1,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    calib = np.linspace(0, 6.28, 64, dtype=np.float32).reshape(-1, 1)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path = tmp_path_factory.mktemp("bench") / "dense_int8.tflite"
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    """y = relu(x @ W) with x [N, 16] float32, MatMul big enough for intra-op threads to matter."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Relu", ["xw"], ["y"])], "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        initializer=[numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("bench") / "mlp.onnx"
    onnx.save_model(model, str(path))
    return path


@pytest.fixture(params=["tflite", "onnx"])
def model(request, tflite_int8, onnx_model) -> Path:
    return tflite_int8 if request.param == "tflite" else onnx_model


# ---- latency, settings, threads --------------------------------------------------------------

def test_percentiles_are_ordered_and_runs_honoured(model):
    result = bench_json(model, "--runs", 37, "--warmup", 3)

    lat = result["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert result["requested"] == {"threads": 1, "warmup": 3, "runs": 37, "batch": 1}
    assert (result["reported"]["runs"], result["reported"]["warmup"], result["reported"]["batch"]) == (37, 3, 1)
    assert result["input"]["source"] == "random"


def test_runtime_defaults_from_the_suffix_and_reports_its_version(model):
    result = bench_json(model, "--runs", 5)

    expected = {".tflite": "litert", ".onnx": "onnxruntime"}[model.suffix]
    assert result["runtime"] == expected
    assert result["runtime_version"] and result["runtime_version"] != "unknown"
    assert result["bytes"] == model.stat().st_size
    assert result["format"] == model.suffix.lstrip(".")


def test_two_threads_are_reported_by_the_runtime(model):
    result = bench_json(model, "--threads", 2, "--runs", 5)

    assert result["requested"]["threads"] == 2
    assert result["reported"]["threads"] == 2
    assert result["reported"]["threads_source"]


def test_onnxruntime_thread_count_is_read_from_the_session_options(onnx_model):
    # the control for the test above: the figure comes from ORT, so it follows what the session got
    one, three = bench_json(onnx_model, "--runs", 3), bench_json(onnx_model, "--threads", 3, "--runs", 3)

    assert "intra_op_num_threads" in one["reported"]["threads_source"]
    assert (one["reported"]["threads"], three["reported"]["threads"]) == (1, 3)


def test_memory_is_reported_in_bytes(model):
    result = bench_json(model, "--runs", 5)

    mem = result["memory"]
    assert mem["peak_rss_bytes"] > 10 * 1024 * 1024  # a Python process with numpy: well over 10 MiB
    assert mem["peak_rss_bytes"] >= mem["rss_after_bytes"] > 0
    assert mem["rss_increase_bytes"] == mem["rss_after_bytes"] - mem["rss_before_bytes"]


def test_batch_is_passed_through(onnx_model):
    result = bench_json(onnx_model, "--batch", 4, "--runs", 5)

    assert result["reported"]["batch"] == 4


def test_human_output_is_a_table(tflite_int8):
    result = invoke(tflite_int8, "--runs", 5, "--threads", 2)

    assert result.exit_code == 0, result.output
    for word in ("latency p50", "latency p99", "threads", "peak RSS", "model size", "litert"):
        assert word in result.stdout


# ---- --input FILE.npz ------------------------------------------------------------------------

def test_float_npz_input_is_quantized_for_an_int8_model(tflite_int8, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, samples=np.linspace(0, 6, 8, dtype=np.float32).reshape(8, 1))

    result = bench_json(tflite_int8, "--input", npz, "--runs", 5)

    assert result["input"]["dtype"] == "int8"
    assert result["input"]["source"] == f"{npz}:samples"
    assert result["reported"]["batch"] == 8


def test_npz_array_named_like_the_input_is_preferred(onnx_model, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, a_first=np.zeros((2, 3), np.float32), x=np.ones((3, 16), np.float32))

    result = bench_json(onnx_model, "--input", npz, "--runs", 5)

    assert result["input"]["source"].endswith(":x")
    assert result["reported"]["batch"] == 3


def test_int8_npz_input_is_used_as_is(tflite_int8, tmp_path):
    npz = tmp_path / "q.npz"
    np.savez(npz, np.arange(-4, 4, dtype=np.int8).reshape(8, 1))

    result = bench_json(tflite_int8, "--input", npz, "--runs", 5)

    assert result["reported"]["batch"] == 8


def test_a_single_sample_without_batch_dimension_is_accepted(onnx_model, tmp_path):
    npz = tmp_path / "one.npz"
    np.savez(npz, x=np.ones(16, np.float32))

    assert bench_json(onnx_model, "--input", npz, "--runs", 3)["reported"]["batch"] == 1


def assert_input_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


def test_wrong_shape_npz_exits_2_naming_the_file(model, tmp_path):
    npz = tmp_path / "wrong_shape.npz"
    np.savez(npz, x=np.zeros((4, 5, 5), np.float32))

    assert_input_error(invoke(model, "--input", npz), "wrong_shape.npz", "[4, 5, 5]", "expects")


def test_wrong_dtype_npz_exits_2(onnx_model, tmp_path):
    npz = tmp_path / "strings.npz"
    np.savez(npz, x=np.array([["a"] * 16], dtype="<U1"))

    assert_input_error(invoke(onnx_model, "--input", npz), "strings.npz", "float32")


def test_batch_not_matching_the_npz_exits_2(onnx_model, tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, x=np.ones((3, 16), np.float32))

    assert_input_error(invoke(onnx_model, "--input", npz, "--batch", 4), "x.npz", "3 samples", "--batch 4")


def test_missing_or_unreadable_npz_exits_2(onnx_model, tmp_path):
    not_npz = tmp_path / "garbage.npz"
    not_npz.write_bytes(b"not a zip")

    assert_input_error(invoke(onnx_model, "--input", tmp_path / "absent.npz"), "absent.npz", "not found")
    assert_input_error(invoke(onnx_model, "--input", not_npz), "garbage.npz")


# ---- model errors ----------------------------------------------------------------------------

def test_missing_model_exits_2(tmp_path):
    assert_input_error(invoke(tmp_path / "nope.tflite"), "nope.tflite")


def test_runtime_that_does_not_run_the_format_exits_2(tflite_int8):
    assert_input_error(invoke(tflite_int8, "--runtime", "onnxruntime"), "--runtime litert")


def test_corrupt_tflite_exits_2(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)

    assert_input_error(invoke(bad), "bad.tflite", "not a valid .tflite")
