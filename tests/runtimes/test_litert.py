"""What only LiteRT does, on tiny .tflite files built with TensorFlow (tests/contract/models.py) and on
the real TFLM / MLCommons files in ../shared/models when present: quantization parameters as the
interpreter reads them, the XNNPACK delegate and its silenced banner, the fallback for graphs that
cannot resize. The Session checks shared by every runtime are in tests/contract/test_runtime_contract.py.

TensorFlow is used only to *make* test models; edgekit's runtime code never imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.formats.files import param_count
from edgekit.runtimes import get_runtime
from tests.contract.models import tflite_models
from tests.helpers import ROOT, shared_model


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """The contract suite's dense classifier as float, int8 and uint8-I/O .tflite files."""
    return tflite_models(tmp_path_factory.mktemp("tflite"))


def test_quantization_params_equal_the_interpreters(tiny_models):
    from ai_edge_litert.interpreter import Interpreter

    for kind in ("int8", "uint8"):
        path = tiny_models.files[kind]
        session = get_runtime("litert").open(path)
        interpreter = Interpreter(model_path=str(path))
        for info, detail in ((session.inputs[0], interpreter.get_input_details()[0]),
                             (session.outputs[0], interpreter.get_output_details()[0])):
            scale, zero_point = detail["quantization"]
            assert scale > 0
            assert (info.scale, info.zero_point) == (pytest.approx(scale), zero_point)
            assert info.dtype == np.dtype(detail["dtype"]).name == kind


def test_default_resolver_applies_the_xnnpack_delegate(tiny_models):
    info = get_runtime("litert").open(tiny_models.files["int8"], threads=2).describe()
    assert info["xnnpack"] is True and info["delegate_nodes"] > 0
    assert info["op_resolver"].startswith("AUTO")
    float_info = get_runtime("litert").open(tiny_models.files["float"]).describe()
    assert float_info["undelegated_ops"] == {}  # XNNPACK takes every op of the tiny float model


def test_xnnpack_banner_never_reaches_stderr(tiny_models):
    code = ("from edgekit.runtimes import get_runtime; import numpy as np; "
            f"s = get_runtime('litert').open({str(tiny_models.files['float'])!r}); "
            f"s.predict(np.zeros((2, {tiny_models.features}), 'float32'))")
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "XNNPACK" not in done.stderr and "INFO" not in done.stderr


# ---- corrupt files ---------------------------------------------------------------------------

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
