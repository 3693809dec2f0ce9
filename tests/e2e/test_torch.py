"""PyTorch teachers end to end: the same recipe keys as Keras, both formats int8, measured on the
runtimes; loading routes (torch.export, TorchScript, factory + state_dict) and the layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import ROOT, artifact_of, read_report, run_edgekit

pytestmark = pytest.mark.slow

TORCH_TEACHER = "sample_models/digits_cnn_torch.pt2"


def test_digits_torch_gives_int8_tflite_and_onnx(example_run):
    out, result = example_run("digits_torch.yaml")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["framework"] == "torch"
    teacher = artifact_of(report, "teacher")
    for fmt, runtime in (("tflite", "litert"), ("onnx", "onnxruntime")):
        final, baseline = artifact_of(report, f"model.{fmt}"), artifact_of(report, f"baseline.{fmt}")
        assert final["runtime"] == runtime and final["precision"] == "int8"
        assert teacher["accuracy"] - final["accuracy"] <= 0.010, fmt
        assert final["bytes"] <= 0.30 * baseline["bytes"], fmt
        assert final["layout"] == "nchw"
    assert artifact_of(report, "model.tflite")["io"]["inputs"][0]["dtype"] == "int8"
    card = json.loads((out / "model_card.json").read_text())
    assert card["models"]["tflite"]["input_layout"] == "nchw"
    assert card["models"]["tflite"]["inputs"][0]["shape"][1:] == [1, 8, 8]


@pytest.mark.parametrize("teacher", ["sample_models/digits_cnn.keras", TORCH_TEACHER])
def test_one_recipe_body_passes_the_same_gates_for_keras_and_torch(teacher, tmp_path):
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", f"teacher.path={teacher}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["framework"] == ("torch" if teacher.endswith(".pt2") else "keras")
    assert [g["gate"] for g in report["gates"]] == ["max_size", "max_size", "max_accuracy_drop", "max_accuracy_drop",
                                                     "min_accuracy", "min_accuracy", "min_compression"]
    assert all(g["passed"] for g in report["gates"])


def test_torchscript_teacher_with_channels_last_tflite(tmp_path):
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "teacher.path=sample_models/digits_cnn_torch.pt", "--set", "export.channels_last=true")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    tflite, onnx = artifact_of(report, "model.tflite"), artifact_of(report, "model.onnx")
    assert tflite["layout"] == "nhwc" and tflite["io"]["inputs"][0]["shape"][1:] == [8, 8, 1]
    assert onnx["layout"] == "nchw" and onnx["io"]["inputs"][0]["shape"][1:] == [1, 8, 8]
    assert artifact_of(report, "teacher")["accuracy"] - tflite["accuracy"] <= 0.01


def test_factory_with_a_state_dict(tmp_path):
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "teacher.path=sample_models/digits_cnn_torch.pth",
                         "--set", "teacher.factory=digits_torch_factory:build_model",
                         "--set", "export.formats=[onnx]", "--set", "evaluate.runtimes=[onnxruntime]",
                         "--set", "gates={min_accuracy: 0.95}")
    assert result.returncode == 0, result.stderr
    assert artifact_of(read_report(out), "teacher")["accuracy"] >= 0.95


def test_a_pickled_module_is_refused_with_the_reason(tmp_path):
    import torch

    from edgekit.backends.torch import zoo

    pickled = tmp_path / "whole_model.pt"
    torch.save(zoo.build("mlp", 0.25, (8, 8, 1), 10), pickled)
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(tmp_path / "run"),
                         "--set", f"teacher.path={pickled}")
    assert result.returncode == 2
    assert "arbitrary code" in result.stderr and "whole_model.pt" in result.stderr
    assert "torch.export" in result.stderr  # what to do instead
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()


def test_torch_channel_pruning_shrinks_the_onnx(tmp_path):
    """Channel pruning needs the module's layers, so the teacher is rebuilt by its factory."""
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "teacher.path=sample_models/digits_cnn_torch.pth",
                         "--set", "teacher.factory=digits_torch_factory:build_model",
                         "--set", "stages=[{prune: {structure: channels, sparsity: 0.5, epochs: 10}}]",
                         "--set", "gates={}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    final, unpruned, teacher = (artifact_of(report, n) for n in ("model.onnx", "baseline.onnx", "teacher"))
    assert final["bytes"] <= 0.6 * unpruned["bytes"]
    assert teacher["accuracy"] - final["accuracy"] <= 0.015


def test_nchw_data_with_a_keras_teacher(tmp_path):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images.astype(np.float32)[:, None, :, :]  # NCHW
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.2, random_state=0,
                                                        stratify=digits.target)
    np.savez(tmp_path / "digits_nchw.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", f"data={{source: npz, path: {tmp_path / 'digits_nchw.npz'}, layout: nchw, "
                                  "scale: 0.0625}", "--set", f"teacher.path={ROOT / 'sample_models/digits_cnn.keras'}")
    assert result.returncode == 0, result.stderr
    assert artifact_of(read_report(out), "model.tflite")["accuracy"] >= 0.96


def test_channel_pruning_of_a_graph_only_teacher_is_refused_before_training(tmp_path):
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(tmp_path / "run"),
                         "--set", f"teacher.path={TORCH_TEACHER}",
                         "--set", "stages=[{prune: {structure: channels, sparsity: 0.5}}]")
    assert result.returncode == 2
    assert "stages[0]" in result.stderr and "teacher.factory" in result.stderr


def test_torch_qat_exports_both_formats(tmp_path):
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "teacher.path=sample_models/digits_cnn_torch.pth",
                         "--set", "teacher.factory=digits_torch_factory:build_model",
                         "--set", "stages=[{quantize: {method: qat, epochs: 1}}]")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    scheme = next(s for s in report["stages"] if s["name"] == "quantize")["details"]["scheme"]
    assert scheme.startswith("PT2E QAT")
    tflite, onnx = artifact_of(report, "model.tflite"), artifact_of(report, "model.onnx")
    assert tflite["io"]["inputs"][0]["dtype"] == "int8"
    assert tflite["bytes"] <= 0.30 * artifact_of(report, "baseline.tflite")["bytes"]
    assert onnx["bytes"] <= 0.35 * artifact_of(report, "baseline.onnx")["bytes"]
