"""What only ONNX Runtime and .onnx files do, on tiny models built with onnx.helper: a batch fixed in
the file, the CPU provider, external data, QDQ parameters and ORT's fused integer matmul, and
measure_file on an .onnx. The Session checks shared by every runtime are in
tests/contract/test_runtime_contract.py.

The classifier is softmax(x @ W + b) with known weights, so every expected output is plain numpy.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import InputError  # noqa: E402
from edgekit.evaluate import measure_file  # noqa: E402
from edgekit.formats.files import file_size, model_files, param_count  # noqa: E402
from edgekit.runtimes import get_runtime  # noqa: E402
from tests.contract.models import onnx_model  # noqa: E402

RNG = np.random.default_rng(0)
W = RNG.standard_normal((4, 3)).astype(np.float32)
B = np.array([0.1, -0.2, 0.3], np.float32)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def expected(x):
    return softmax(x @ W + B)


def classifier(batch_dim="N", extra_input=False):
    """softmax(x @ W + b); batch_dim is a symbolic name or a fixed int."""
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 4])]
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]),
             helper.make_node("Add", ["xw", "B"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("x2", TensorProto.FLOAT, [batch_dim, 3]))
        nodes[-1] = helper.make_node("Add", ["logits", "x2"], ["probs"])
    return onnx_model(nodes, inputs, [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch_dim, 3])],
                      [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")], "clf")


@pytest.fixture
def clf_path(tmp_path):
    path = tmp_path / "clf.onnx"
    onnx.save_model(classifier(), str(path))
    return path


def test_fixed_batch_of_one_runs_one_sample_at_a_time(tmp_path):
    path = tmp_path / "fixed.onnx"
    onnx.save_model(classifier(batch_dim=1), str(path))
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    session = get_runtime("onnxruntime").open(path)
    calls = []
    y = session.predict(x, batch_size=64, progress=lambda done, total: calls.append(done))
    np.testing.assert_allclose(y, expected(x), rtol=1e-5, atol=1e-6)
    assert calls == [1, 2, 3, 4, 5]
    assert session.latency(warmup=1, runs=3, batch=8)["batch"] == 1  # the file's own batch is used


def test_describe_names_the_cpu_provider(clf_path):
    assert get_runtime("onnxruntime").open(clf_path).describe()["providers"] == ["CPUExecutionProvider"]


def test_multi_input_model_is_rejected_clearly(tmp_path):
    path = tmp_path / "two.onnx"
    onnx.save_model(classifier(extra_input=True), str(path))
    session = get_runtime("onnxruntime").open(path)
    with pytest.raises(InputError, match="2 inputs"):
        session.predict(np.zeros((2, 4), np.float32))


def test_external_data_counts_in_files_size_and_params(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save_model(classifier(), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    data = tmp_path / "m.onnx.data"
    assert data.is_file()
    assert model_files(path) == [path, data]
    size = file_size(path)
    assert size["files"] == ["m.onnx", "m.onnx.data"]
    assert size["bytes"] == path.stat().st_size + data.stat().st_size
    assert size["gzip_bytes"] == sum(len(gzip.compress(p.read_bytes(), compresslevel=9)) for p in (path, data))
    assert param_count(path) == W.size + B.size
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(get_runtime("onnxruntime").open(path).predict(x), expected(x), rtol=1e-5, atol=1e-6)
    data.unlink()
    with pytest.raises(InputError, match="m.onnx.data"):
        model_files(path)


def test_param_count_includes_constants_and_skips_qdq_parameters(tmp_path):
    w_q = np.clip(np.round(W / 0.02), -127, 127).astype(np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["Wq", "w_scale", "w_zp"], ["Wf"]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([-1, 3], np.int64))),
        helper.make_node("MatMul", ["x", "Wf"], ["xw"]),
        helper.make_node("Add", ["xw", "B"], ["y0"]),
        helper.make_node("Reshape", ["y0", "shape"], ["y"]),
    ]
    model = onnx_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w_q, "Wq"), numpy_helper.from_array(np.float32(0.02), "w_scale"),
         numpy_helper.from_array(np.int8(0), "w_zp"), numpy_helper.from_array(B, "B")], "qdq")
    path = tmp_path / "qdq.onnx"
    onnx.save_model(model, str(path))
    assert param_count(path) == 12 + 3 + 2  # weights + bias + the Constant shape; not scale / zero point
    x = RNG.standard_normal((2, 4)).astype(np.float32)
    y = get_runtime("onnxruntime").open(path).predict(x)
    # ORT fuses DequantizeLinear->MatMul into an integer matmul (activations quantized on the fly),
    # so the result is close to, not equal to, the float product.
    np.testing.assert_allclose(y, x @ (w_q.astype(np.float32) * 0.02) + B, atol=2e-2)


def test_measure_file_reports_metrics_size_and_predictions(clf_path):
    x = RNG.standard_normal((20, 4)).astype(np.float32)
    truth = expected(x).argmax(1)
    y = truth.copy()
    y[:5] = (y[:5] + 1) % 3  # 5 of 20 labels wrong -> accuracy 0.75
    reference = np.eye(3)[truth]
    reference[:2] = np.eye(3)[(truth[:2] + 1) % 3]  # teacher disagrees on 2 -> agreement 0.9
    calls = []
    fig = measure_file(clf_path, "onnxruntime", x, y, "classification", reference=reference,
                       latency_cfg={"warmup": 1, "runs": 5, "batch": 2},
                       progress=lambda d, t: calls.append(d))
    assert fig["accuracy"] == pytest.approx(0.75) and fig["agreement"] == pytest.approx(0.9)
    assert (fig["runtime"], fig["format"], fig["runtime_version"]) == ("onnxruntime", "onnx", ort.__version__)
    assert fig["bytes"] == clf_path.stat().st_size and fig["files"] == ["clf.onnx"]
    assert fig["params"] == 15 and fig["gzip_bytes"] > 0
    assert fig["latency_ms"]["runs"] == 5 and fig["latency_ms"]["batch"] == 2
    assert fig["io"]["inputs"][0]["shape"] == [-1, 4]
    np.testing.assert_allclose(fig["_predictions"], expected(x), rtol=1e-5, atol=1e-6)
    assert calls[-1] == 20
    assert measure_file(clf_path, "onnxruntime", x, y, "classification")["latency_ms"] is None
