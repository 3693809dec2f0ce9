"""A Keras LSTM teacher through the CLI (issue 11): `edgekit compress` with PTQ int8 writes a
fixed-batch (1) .tflite with the fused UNIDIRECTIONAL_SEQUENCE_LSTM and a .onnx, and measures both."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import artifact_of, bump_dataset, compressed_report, recurrent_classifier, run_edgekit

pytestmark = pytest.mark.slow


def test_an_lstm_teacher_compresses_to_int8_tflite_and_onnx(tmp_path):
    data = bump_dataset(n=500)
    np.savez(tmp_path / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)
    recurrent_classifier("LSTM", data).save(tmp_path / "lstm.keras")
    recipe = tmp_path / "lstm.yaml"
    recipe.write_text("version: 1\nname: lstm\n"
                      "data: {source: npz, path: data.npz, calibration_samples: 64}\n"
                      "teacher: {path: lstm.keras}\n"
                      "stages: [{quantize: {method: ptq, precision: int8}}]\n"
                      "evaluate: {latency: {warmup: 1, runs: 5}}\n")
    out = tmp_path / "run"
    report, teacher = compressed_report(recipe, out)
    assert teacher["accuracy"] >= 0.9
    tflite = artifact_of(report, "model.tflite")
    assert tflite["accuracy"] >= teacher["accuracy"] - 0.01, tflite
    for name in ("model.tflite", "model.onnx"):
        final = artifact_of(report, name)
        assert final["bytes"] > 0 and final["latency_ms"]["p50"] > 0, final

    inspected = run_edgekit("inspect", str(out / "model.tflite"), "--json").json()
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in inspected["ops"]
    assert inspected["inputs"][0]["shape"][0] == 1

    # the .onnx keeps the LSTM's W / R in int8 (DynamicQuantizeLSTM), and the report says how it was chosen
    onnx_facts = run_edgekit("inspect", str(out / "model.onnx"), "--json").json()
    assert "com.microsoft.DynamicQuantizeLSTM" in onnx_facts["ops"] and "LSTM" not in onnx_facts["ops"]
    assert onnx_facts["tensors_by_size"][0]["dtype"] == "int8"  # R, the largest tensor
    import onnx

    proto = onnx.load(str(out / "model.onnx"))
    lstm = next(n for n in proto.graph.node if n.op_type == "DynamicQuantizeLSTM")
    types = {t.name: t.data_type for t in proto.graph.initializer}
    assert [types[name] for name in lstm.input[1:3]] == [onnx.TensorProto.INT8] * 2  # W and R
    assert "DynamicQuantizeLSTM" in artifact_of(report, "model.onnx")["quantization_choice"]["recurrent"]
