"""LiteRT sessions on tiny .tflite files built here with TensorFlow, and on the real TFLM / MLCommons
files in ../shared/models when present.

TensorFlow is used only to *make* test models; edgekit's runtime code never imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.formats.files import file_size, model_files, param_count
from edgekit.runtimes import get_runtime
from edgekit.runtimes.base import TensorInfo, dequantize, quantize

SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
N_FEATURES, N_HIDDEN, N_CLASSES = 8, 16, 4


def shared_model(relative: str) -> Path:
    path = SHARED_MODELS / relative
    if not path.is_file():
        pytest.skip(f"third-party test model {path} is absent (the repo's sibling folder shared/models/)")
    return path


# ---- pure quantization helpers (no runtime) --------------------------------------------------

def test_quantize_rounds_clips_and_dequantize_inverts():
    info = TensorInfo("x", [-1, 3], "int8", scale=0.5, zero_point=-10)
    q = quantize(np.array([[0.0, 1.26, 1000.0]], np.float32), info)
    assert q.dtype == np.int8 and q.tolist() == [[-10, -7, 127]]
    np.testing.assert_allclose(dequantize(q, info), [[0.0, 1.5, 68.5]])
    u8 = TensorInfo("x", [-1, 1], "uint8", scale=0.1, zero_point=128)
    assert quantize(np.array([-100.0, 0.0], np.float32), u8).tolist() == [0, 128]
    float_info = TensorInfo("y", [-1, 1], "float32")
    assert dequantize(np.array([1.5], np.float32), float_info).tolist() == [1.5]


# ---- models made with TensorFlow -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A dense classifier as float .tflite, full-int8 .tflite and uint8-I/O .tflite, plus test data."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("tflite")
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((N_FEATURES, N_HIDDEN)).astype(np.float32)
    w2 = rng.standard_normal((N_HIDDEN, N_CLASSES)).astype(np.float32)
    b2 = np.linspace(-0.5, 0.5, N_CLASSES).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32)])
    def model(x):
        return tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2) + b2)

    calib = rng.uniform(-1, 1, (128, N_FEATURES)).astype(np.float32)

    def convert(io_type=None):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
        if io_type is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
        return converter.convert()

    paths = {}
    for name, io_type in (("float", None), ("int8", tf.int8), ("uint8", tf.uint8)):
        paths[name] = folder / f"{name}.tflite"
        paths[name].write_bytes(convert(io_type))
    x = rng.uniform(-1, 1, (200, N_FEATURES)).astype(np.float32)
    reference = model(x).numpy()
    return paths, x, reference


def test_float_model_predicts_like_tensorflow(tiny_models):
    paths, x, reference = tiny_models
    session = get_runtime("litert").open(paths["float"])
    assert session.inputs[0].shape == [-1, N_FEATURES] and session.inputs[0].scale is None
    np.testing.assert_allclose(session.predict(x), reference, atol=1e-5)


@pytest.mark.parametrize("kind", ["int8", "uint8"])
def test_integer_model_is_quantized_and_dequantized(tiny_models, kind):
    paths, x, reference = tiny_models
    session = get_runtime("litert").open(paths[kind])
    assert session.inputs[0].dtype == kind and session.outputs[0].dtype == kind
    y = session.predict(x)
    assert y.dtype == np.float32 and y.shape == reference.shape
    assert np.mean(y.argmax(1) == reference.argmax(1)) >= 0.9
    error = np.abs(y - reference)
    # int8 error through two layers of random weights; a wrong scale or zero point is off by > 0.3
    assert error.mean() < 0.01 and error.max() < 0.2, (error.mean(), error.max())


def test_quantization_params_equal_the_interpreters(tiny_models):
    from ai_edge_litert.interpreter import Interpreter

    paths, _, _ = tiny_models
    session = get_runtime("litert").open(paths["int8"])
    interpreter = Interpreter(model_path=str(paths["int8"]))
    for info, detail in ((session.inputs[0], interpreter.get_input_details()[0]),
                         (session.outputs[0], interpreter.get_output_details()[0])):
        scale, zero_point = detail["quantization"]
        assert scale > 0
        assert (info.scale, info.zero_point) == (pytest.approx(scale), zero_point)


def test_resized_batches_equal_one_at_a_time(tiny_models):
    paths, x, _ = tiny_models
    for kind in ("float", "int8"):
        session = get_runtime("litert").open(paths[kind])
        calls = []
        batched = session.predict(x, batch_size=64, progress=lambda done, total: calls.append(done))
        assert calls == [64, 128, 192, 200]  # 64-sample invocations, then the resized tail of 8
        single = session.predict(x[:50], batch_size=1)
        np.testing.assert_allclose(batched[:50], single, atol=1e-6)


def test_latency_percentiles_and_describe(tiny_models):
    import ai_edge_litert

    paths, _, _ = tiny_models
    session = get_runtime("litert").open(paths["int8"], threads=2)
    lat = session.latency(warmup=3, runs=40, batch=4)
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["min"] > 0
    assert (lat["runs"], lat["warmup"], lat["batch"], lat["threads"]) == (40, 3, 4, 2)
    info = session.describe()
    assert info["runtime"] == "litert" and info["version"] == ai_edge_litert.__version__
    assert info["xnnpack"] is True and info["threads"] == 2
    assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["scale"] > 0
    # predict still works after latency resized the batch to 4
    assert session.predict(np.zeros((3, N_FEATURES), np.float32)).shape == (3, N_CLASSES)


def test_param_count_of_built_model(tiny_models):
    paths, _, _ = tiny_models
    expected = N_FEATURES * N_HIDDEN + N_HIDDEN * N_CLASSES + N_CLASSES
    assert param_count(paths["float"]) == expected
    assert param_count(paths["int8"]) == expected  # int8 keeps the same tensors; biases become int32
    assert model_files(paths["int8"]) == [paths["int8"]]
    assert file_size(paths["int8"])["bytes"] == paths["int8"].stat().st_size


def test_xnnpack_banner_never_reaches_stderr(tiny_models):
    paths, _, _ = tiny_models
    code = ("from edgekit.runtimes import get_runtime; import numpy as np; "
            f"s = get_runtime('litert').open({str(paths['float'])!r}); s.predict(np.zeros((2, {N_FEATURES}), 'float32'))")
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr and "INFO" not in done.stderr


# ---- corrupt files ---------------------------------------------------------------------------

def test_garbage_and_truncated_files_are_input_errors(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(os.urandom(64) + b"garbage")
    with pytest.raises(InputError, match=r"x\.tflite: not a valid \.tflite model"):
        get_runtime("litert").open(bad)
    with pytest.raises(InputError, match=r"x\.tflite: not a valid \.tflite model"):
        param_count(bad)
    with pytest.raises(InputError, match="not found"):
        get_runtime("litert").open(tmp_path / "missing.tflite")


def test_truncated_real_file_is_an_input_error(tmp_path):
    source = shared_model("tflm/hello_world_int8.tflite")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(source.read_bytes()[:200])  # keeps the TFL3 identifier, loses the rest
    with pytest.raises(InputError, match=r"cut\.tflite: not a valid \.tflite model"):
        get_runtime("litert").open(cut)


# ---- real third-party files ------------------------------------------------------------------

def test_tflm_hello_world_int8_predicts_sine():
    session = get_runtime("litert").open(shared_model("tflm/hello_world_int8.tflite"))
    x = np.linspace(0, 2 * np.pi, 200, dtype=np.float32)[:, None]
    y = session.predict(x)
    assert y.shape == (200, 1)
    assert np.mean(np.abs(y[:, 0] - np.sin(x[:, 0]))) < 0.05
    assert param_count(shared_model("tflm/hello_world_int8.tflite")) == 1 * 16 + 16 + 16 * 16 + 16 + 16 * 1 + 1


def test_lstm_that_cannot_resize_falls_back_to_one_sample_at_a_time():
    session = get_runtime("litert").open(shared_model("tflm/trained_lstm_int8.tflite"))
    x = np.random.default_rng(0).uniform(0, 1, (5, 28, 28)).astype(np.float32)
    calls = []
    batched = session.predict(x, batch_size=4, progress=lambda done, total: calls.append(done))
    assert calls == [1, 2, 3, 4, 5]  # the LSTM's state tensors are sized for batch 1
    single = np.concatenate([session.predict(x[i:i + 1]) for i in range(5)])
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=0.02)  # dequantized softmax
    assert session.latency(warmup=1, runs=3, batch=4)["batch"] == 1


def test_mlcommons_wakeword_reference_accuracy():
    data = np.load(shared_model("tiny_sww/calibration_samples.npz"))
    session = get_runtime("litert").open(shared_model("tiny_sww/str_ww_ref_model.tflite"))
    y = session.predict(data["specs"], batch_size=16)
    assert np.mean(y.argmax(1) == data["labels"]) == pytest.approx(41 / 45)  # as documented in README
