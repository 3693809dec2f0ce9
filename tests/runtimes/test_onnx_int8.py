"""int8 .onnx files that ONNX Runtime runs as integer kernels (issue 11, points 3 and 4).

Tiny torch models are exported to float .onnx and quantized by edgekit's int8 plan; the assertions
are on the structure ONNX Runtime's CPU provider then executes (its optimized graph) and on the
file, never on timings: a CNN runs QLinearConv and no float Conv, a Transformer encoder's
constant-weight MatMuls run as integer kernels, an nn.LSTM stores int8 W / R (DynamicQuantizeLSTM)
and is at most 0.35x its float bytes, and the measured choice reaches the report and the card.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from torch import nn  # noqa: E402

from edgekit.formats.inspect import inspect_model  # noqa: E402
from edgekit.formats.onnx.quantize import quantize_onnx  # noqa: E402
from edgekit.formats.onnx.torch import to_onnx  # noqa: E402
from edgekit.formats.onnx.tuning import candidates  # noqa: E402
from edgekit.precision import plan_for  # noqa: E402
from edgekit.run.bundle import model_card  # noqa: E402

pytestmark = pytest.mark.slow
INT8 = plan_for("int8", "float32")


def _int8(model: nn.Module, samples: np.ndarray, tmp: Path, channels_last=None) -> tuple[Path, Path, dict]:
    """(float .onnx, int8 .onnx, the exporter's record of its choice) of `model`; `channels_last` is
    the writer's (NHWC) view of image samples."""
    torch.manual_seed(0)
    model.eval()
    float_file = to_onnx(model, tmp / "float.onnx", channels_last if channels_last is not None else samples)
    facts: dict = {}
    int8_file = quantize_onnx(float_file, tmp / "int8.onnx", INT8, samples, threads=1, facts=facts)
    return float_file, int8_file, facts["quantization_choice"]


def _optimized(path: Path, tmp: Path):
    """The graph ONNX Runtime's CPU provider executes for `path` (default optimization level)."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp / f"{path.stem}.optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(options.optimized_model_filepath).graph


def _constants(graph) -> set[str]:
    return {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}


def test_cnn_int8_runs_integer_convolutions_only(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2),
                          nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))
    samples = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    float_file, int8_file, record = _int8(model, samples, tmp_path, samples.transpose(0, 2, 3, 1))
    ops = [n.op_type for n in _optimized(int8_file, tmp_path).node]
    assert ops.count("QLinearConv") + ops.count("ConvInteger") == 3, ops
    assert not {"Conv", "FusedConv", "NchwcConv"} & set(ops), ops

    assert record["chosen"] in {c.name for c in candidates()}
    assert [c["name"] for c in record["candidates"]] == [c.name for c in candidates()]
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    assert chosen["int8_kernels"].get("QLinearConv") == 3 and chosen["float_ops"] == {}
    assert chosen["p50_ms"] > 0 and chosen["bytes_vs_float"] < 1 and record["per_channel"] is True

    # the report's artifact entry carries the record (run/measuring.py) and the card repeats it
    artifact = {"name": int8_file.name, "role": "final", "format": "onnx", "precision": "int8",
                "quantization_choice": record}
    card = model_card({"name": "cnn", "task": "classification", "artifacts": [artifact]}, "0" * 64, {}, None,
                      tmp_path)
    assert card["models"]["onnx"]["quantization_choice"]["chosen"] == record["chosen"]
    # the file itself holds no timings: the same model gives the same bytes
    assert all("p50" not in prop.value for prop in onnx.load(str(int8_file)).metadata_props)


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(8, 32)
        self.encoder = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def test_transformer_constant_weight_matmuls_become_integer_kernels(tmp_path):
    samples = np.random.default_rng(0).standard_normal((8, 12, 8)).astype(np.float32)
    _, int8_file, record = _int8(_Encoder(), samples, tmp_path)
    graph = _optimized(int8_file, tmp_path)
    constants = _constants(graph)
    integer = [n.op_type for n in graph.node if n.op_type in {"QLinearMatMul", "QGemm", "MatMulInteger",
                                                              "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}]
    # embed, in_proj, out_proj, the two feed-forward Linears and the head: 6 weight matrices
    assert len(integer) >= 6, [n.op_type for n in graph.node]
    float_with_weights = [n.name for n in graph.node
                          if n.op_type in {"MatMul", "FusedMatMul", "Gemm", "FusedGemm"} and n.input[1] in constants]
    assert float_with_weights == []
    assert record["chosen"] in {c.name for c in candidates()}


class _Recurrent(nn.Module):
    def __init__(self, layer=nn.LSTM, hidden=112):
        super().__init__()
        self.rnn = layer(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_lstm_int8_stores_int8_recurrent_weights(tmp_path):
    model = _Recurrent()
    assert sum(p.numel() for p in model.parameters()) >= 50_000
    samples = np.random.default_rng(0).standard_normal((8, 10, 16)).astype(np.float32)
    float_file, int8_file, record = _int8(model, samples, tmp_path)
    assert int8_file.stat().st_size <= 0.35 * float_file.stat().st_size

    proto = onnx.load(str(int8_file))
    lstm = [n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM"]
    assert len(lstm) == 1 and not [n for n in proto.graph.node if n.op_type == "LSTM"]
    types = {t.name: t.data_type for t in proto.graph.initializer}
    assert types[lstm[0].input[1]] == onnx.TensorProto.INT8 and types[lstm[0].input[2]] == onnx.TensorProto.INT8

    facts = inspect_model(int8_file, top=2)  # what `edgekit inspect` prints: the two LSTM weights, int8
    assert [t["dtype"] for t in facts["tensors_by_size"]] == ["int8", "int8"]
    assert "DynamicQuantizeLSTM" in record["recurrent"]
    session = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    reference = model(torch.from_numpy(samples[:1])).detach().numpy()
    assert np.argmax(session.run(None, {"input": samples[:1]})[0]) == np.argmax(reference)


def test_keras_inverted_residual_int8_fuses_depthwise_convs_and_adds(tmp_path):
    """The Keras MobileNetV2-style case (issue 11: 1.85x slower than float with S8S8): every Conv,
    depthwise included, and every residual Add run as integer kernels in ORT's optimized graph."""
    tf = pytest.importorskip("edgekit.backends.keras.compat").tf
    from edgekit.formats.onnx.keras import to_onnx as keras_to_onnx

    layers = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((16, 16, 3))
    x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)))
    for _ in range(2):
        y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(48, 1, use_bias=False)(x)))
        y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)))
        x = layers.Add()([x, layers.BatchNormalization()(layers.Conv2D(16, 1, use_bias=False)(y))])
    outputs = layers.Dense(4)(layers.GlobalAveragePooling2D()(x))
    model = tf.keras.Model(inputs, outputs)
    samples = np.random.default_rng(0).random((8, 16, 16, 3)).astype(np.float32)
    float_file = keras_to_onnx(model, tmp_path / "float.onnx")
    facts: dict = {}
    int8_file = quantize_onnx(float_file, tmp_path / "int8.onnx", INT8, samples, threads=1, facts=facts)
    ops = [n.op_type for n in _optimized(int8_file, tmp_path).node]
    assert ops.count("QLinearConv") == 7 and ops.count("QLinearAdd") == 2, ops
    assert not {"Conv", "FusedConv", "NchwcConv", "Add"} & set(ops), ops
    record = facts["quantization_choice"]
    assert next(c for c in record["candidates"] if c["name"] == record["chosen"])["float_ops"] == {}


def test_gru_int8_stores_int8_weights_that_ort_dequantizes(tmp_path):
    """ORT has no integer GRU: its W / R are stored in int8 behind a DequantizeLinear, the file is
    at most 0.35x the float one, and the record says the GRU computes in float."""
    model = _Recurrent(nn.GRU, 128)
    assert sum(p.numel() for p in model.parameters()) >= 50_000
    samples = np.random.default_rng(0).standard_normal((8, 10, 16)).astype(np.float32)
    float_file, int8_file, record = _int8(model, samples, tmp_path)
    assert int8_file.stat().st_size <= 0.35 * float_file.stat().st_size
    proto = onnx.load(str(int8_file))
    producers = {o: n for n in proto.graph.node for o in n.output}
    gru = next(n for n in proto.graph.node if n.op_type == "GRU")
    types = {t.name: t.data_type for t in proto.graph.initializer}
    for weight in gru.input[1:3]:
        assert producers[weight].op_type == "DequantizeLinear"
        assert types[producers[weight].input[0]] == onnx.TensorProto.INT8
    assert "computed in float" in record["recurrent"]
    session = ort.InferenceSession(str(int8_file), providers=["CPUExecutionProvider"])
    reference = model(torch.from_numpy(samples[:1])).detach().numpy()
    assert np.argmax(session.run(None, {"input": samples[:1]})[0]) == np.argmax(reference)
