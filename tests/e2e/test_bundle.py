"""The mobile bundle: what model_card.json tells an app is what the .tflite really wants, and an
app that follows it gets the classes edgekit measured."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import read_report

pytestmark = pytest.mark.slow


def test_card_quantization_matches_the_file_and_reproduces_the_report(example_run):
    from ai_edge_litert.interpreter import Interpreter
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    out, result = example_run("digits_full.yaml")
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "model_card.json").read_text())
    report = read_report(out)
    entry = card["models"]["tflite"]
    interpreter = Interpreter(model_path=str(out / entry["file"]))
    interpreter.allocate_tensors()
    (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
    for card_io, detail in ((entry["inputs"][0], inp), (entry["outputs"][0], outp)):
        assert card_io["dtype"] == np.dtype(detail["dtype"]).name
        assert card_io["scale"] == pytest.approx(detail["quantization"][0], rel=1e-7)
        assert card_io["zero_point"] == detail["quantization"][1]
    signatures = interpreter.get_signature_list()
    assert list(signatures) == ["serving_default"]
    assert entry["signature"] == {"name": "serving_default", **signatures["serving_default"]}
    assert "FULLY_CONNECTED" in entry["ops"] and "CONV_2D" in entry["ops"]

    # What an app does with raw pixels, following only the card:
    digits = load_digits()
    _, raw_test, _, y_test = train_test_split(digits.images.astype(np.float32), digits.target, test_size=0.2,
                                              random_state=0, stratify=digits.target)
    pre, qin, qout = card["preprocessing"], entry["inputs"][0], entry["outputs"][0]
    labels = (out / "labels.txt").read_text().split()
    predicted = []
    for image in raw_test:
        x = image[None, :, :, None] * pre["scale"] + pre["offset"]
        q = np.clip(np.round(x / qin["scale"] + qin["zero_point"]), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        scores = (interpreter.get_tensor(outp["index"]).astype(np.float32) - qout["zero_point"]) * qout["scale"]
        predicted.append(labels[int(scores.argmax())])
    accuracy = float(np.mean([p == str(t) for p, t in zip(predicted, y_test)]))
    final = next(a for a in report["artifacts"] if a["name"] == "model.tflite")
    assert accuracy == pytest.approx(final["accuracy"], abs=1e-9)


def test_inspect_reads_edgekit_files_as_their_runtimes_do(example_run):
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.formats.inspect import schema
    from tests.helpers import run_edgekit
    from tests.runtimes.jsonschema_subset import validate

    out, result = example_run("digits_full.yaml")
    assert result.returncode == 0, result.stderr
    onnx_run = run_edgekit("inspect", str(out / "model.onnx"), "--json", "--no-gpu-check")
    tflite_run = run_edgekit("inspect", str(out / "model.tflite"), "--json", "--no-gpu-check")
    assert onnx_run.returncode == 0 and tflite_run.returncode == 0, onnx_run.stderr + tflite_run.stderr
    onnx_facts, tflite_facts = onnx_run.json(), tflite_run.json()
    assert validate(onnx_facts, schema()) == [] and validate(tflite_facts, schema()) == []

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (ort_input,) = session.get_inputs()
    assert onnx_facts["inputs"][0]["name"] == ort_input.name
    assert onnx_facts["inputs"][0]["dtype"] == "float32" and ort_input.type == "tensor(float)"
    # The QAT .onnx (from the full-integer .tflite) once kept TFLite's fused ReLU between Conv and its
    # QuantizeLinear, and ONNX Runtime computed those convolutions in float; rewritten
    # (formats/onnx/qdq_activations), every Conv / Gemm runs int8, and inspect says so.
    assert onnx_facts["quantization"]["kind"] == "int8 (full integer)"
    assert onnx_facts["quantization"]["float_ops"] == []
    assert {row["precision"] for row in onnx_facts["quantization"]["layers"]} == {"int8"}
    ptq_out, ptq = example_run("quickstart.yaml")
    assert ptq.returncode == 0, ptq.stderr
    ptq_facts = run_edgekit("inspect", str(ptq_out / "model.onnx"), "--json", "--no-gpu-check").json()
    assert ptq_facts["quantization"]["kind"] == "int8 (full integer)" and not ptq_facts["quantization"]["float_ops"]

    interpreter = Interpreter(model_path=str(out / "model.tflite"))
    detail = interpreter.get_input_details()[0]
    assert tflite_facts["inputs"][0]["scale"] == pytest.approx(detail["quantization"][0], rel=1e-7)
    assert tflite_facts["inputs"][0]["zero_point"] == detail["quantization"][1]
    assert tflite_facts["quantization"]["kind"] == "int8 (full integer)"
