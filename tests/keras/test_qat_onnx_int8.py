"""The Keras QAT .onnx runs as integer kernels on ONNX Runtime (issue 12, point 4).

tf2onnx writes a full-integer .tflite's fused activations as a float Relu / Clip before each
QuantizeLinear; with a TF-MOT zero point above -128 ONNX Runtime then ran every Conv / Gemm in
float. A tiny Keras CNN with ReLU, ReLU6, a depthwise convolution and a ReLU Dense is trained, QAT
fine-tuned for one epoch and exported by edgekit's .onnx writer; the assertions are on the graph
ONNX Runtime's CPU provider executes (its optimized graph), on what `edgekit inspect` reads from the
file, and on the outputs against the .tflite of the same QAT model on LiteRT.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit.artifact import Artifact  # noqa: E402
from edgekit.backends import get_backend  # noqa: E402
from edgekit.formats.inspect import inspect_model  # noqa: E402
from edgekit.formats.onnx.qdq_activations import activations_to_uint8, fold_activations  # noqa: E402
from edgekit.formats.registry import get_format  # noqa: E402
from edgekit.recipe import QuantizeConfig  # noqa: E402
from edgekit.runtimes import get_runtime  # noqa: E402
from edgekit.stages import run_stage  # noqa: E402
from tests.helpers import band_dataset, stage_context  # noqa: E402

pytestmark = pytest.mark.slow
_INTEGER = {"QLinearConv", "QGemm", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
_FLOAT_WEIGHT_OPS = {"Conv", "FusedConv", "NchwcConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul"}


def _cnn(input_shape, outputs: int):
    """Conv(ReLU) -> Conv -> ReLU6 -> DepthwiseConv(ReLU) -> MaxPool -> Dense(ReLU) -> Dense."""
    from edgekit.backends.keras.compat import keras

    L = keras.layers
    inputs = keras.Input(input_shape)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = L.Conv2D(16, 3, padding="same")(x)
    x = L.ReLU(max_value=6.0)(x)
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D()(x)
    x = L.Flatten()(x)
    x = L.Dense(16, activation="relu")(x)
    return keras.Model(inputs, L.Dense(outputs)(x), name="qat_cnn")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(data, QAT .onnx, QAT .tflite, the QAT artifact) of the tiny CNN."""
    from edgekit.backends.keras.compat import tf

    tf.random.set_seed(0)
    data = band_dataset()
    backend = get_backend("keras")
    model = backend.train(_cnn(data.input_shape, 4), data, epochs=3, batch_size=32, learning_rate=0.003, seed=0)
    qat = run_stage(Artifact("keras", model), QuantizeConfig(method="qat", epochs=1), stage_context(data, "keras"))
    tmp = tmp_path_factory.mktemp("qat_onnx")
    onnx_path = get_format("onnx").writer("keras").load()(qat, tmp / "qat.onnx", data.x_calib)
    tflite_path = get_format("tflite").writer("keras").load()(qat, tmp / "qat.tflite", data.x_calib)
    return data, Path(onnx_path), Path(tflite_path), qat


def _optimized(path: Path, tmp: Path):
    """The graph ONNX Runtime's CPU provider executes for `path` (default options)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp / f"{path.stem}.optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(options.optimized_model_filepath).graph


def test_every_conv_and_gemm_of_the_qat_onnx_is_an_integer_kernel(exported, tmp_path):
    _, onnx_path, _, _ = exported
    ops = [n.op_type for n in _optimized(onnx_path, tmp_path).node]
    assert ops.count("QLinearConv") == 3, ops  # conv, conv + ReLU6, depthwise
    assert ops.count("QGemm") + ops.count("QLinearMatMul") == 2, ops
    assert not _FLOAT_WEIGHT_OPS & set(ops), ops
    # the ReLU / ReLU6 run as integer Clips after the QuantizeLinear: none is left before one
    graph = onnx.load(str(onnx_path)).graph
    assert not {"Relu"} & {n.op_type for n in graph.node}
    clips = [n for n in graph.node if n.op_type == "Clip"]
    assert clips and all(n.input[0] in {q.output[0] for q in graph.node if q.op_type == "QuantizeLinear"}
                         for n in clips)
    info = inspect_model(onnx_path)["quantization"]
    assert info["kind"] == "int8 (full integer)" and info["float_ops"] == [], info
    assert info["float_ops_from"] == "onnxruntime optimized graph"


def test_the_qat_onnx_gives_the_tflite_outputs(exported):
    data, onnx_path, tflite_path, _ = exported
    x = data.x_test
    from_onnx = get_runtime("onnxruntime").open(onnx_path).predict(x)
    from_tflite = get_runtime("litert").open(tflite_path).predict(x)
    assert (from_onnx.argmax(1) == from_tflite.argmax(1)).mean() >= 0.99
    # the rewrite is exact: at most a rounding step of the output's scale apart, most outputs equal
    step = np.abs(np.diff(np.unique(from_tflite))).min()
    assert np.abs(from_onnx - from_tflite).max() <= step * 1.01
    assert (np.isclose(from_onnx, from_tflite, atol=step / 4)).mean() >= 0.95


def test_the_rewrite_changes_no_output(exported, tmp_path):
    """tf2onnx's own file and the rewritten one, both run op by op as written (no ORT fusion): the
    same numbers, since an activation before a QuantizeLinear equals the integer clamp after it."""
    import tf2onnx

    from edgekit.formats.tflite.keras import to_tflite

    data, onnx_path, _, qat = exported
    tflite = to_tflite(qat.model, tmp_path / "float_io.tflite", qat.plan.with_io("float32"), data.x_calib)
    tf2onnx.convert.from_tflite(str(tflite), opset=17, output_path=str(tmp_path / "tf2onnx.onnx"))
    original = onnx.load(str(tmp_path / "tf2onnx.onnx"))
    assert {"Relu", "Clip"} & {n.op_type for n in original.graph.node}
    x = data.x_test
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    outputs = []
    for path in (tmp_path / "tf2onnx.onnx", onnx_path):
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        outputs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # and the rewrite has nothing left to do on its own output
    rewritten = onnx.load(str(onnx_path))
    assert fold_activations(rewritten) == 0 and activations_to_uint8(rewritten) == 0


def test_inspect_graph_rules_without_onnxruntime(exported, tmp_path, monkeypatch):
    """inspect's rules read from the graph alone (no ORT) know that ORT folds a Relu into the
    QuantizeLinear only when the zero point is the type's minimum, and that an integer Clip is not float."""
    import tf2onnx

    from edgekit.formats.onnx import inspect as inspect_onnx
    from edgekit.formats.tflite.keras import to_tflite

    data, onnx_path, _, qat = exported
    tflite = to_tflite(qat.model, tmp_path / "float_io.tflite", qat.plan.with_io("float32"), data.x_calib)
    tf2onnx.convert.from_tflite(str(tflite), opset=17, output_path=str(tmp_path / "tf2onnx.onnx"))
    monkeypatch.setattr(inspect_onnx, "_ort_optimized", lambda path: None)
    before = inspect_model(tmp_path / "tf2onnx.onnx")["quantization"]
    after = inspect_model(onnx_path)["quantization"]
    assert before["float_ops_from"] == after["float_ops_from"] == "graph rules"
    assert sum(op["op"] == "Conv" for op in before["float_ops"]) >= 2, before  # zero points above -128
    assert not {"Conv", "Clip", "MaxPool"} & {op["op"] for op in after["float_ops"]}, after
