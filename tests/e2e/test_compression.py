"""The compression stages end to end: the acceptance numbers of the chained recipes, read from
report.json (measured by running the exported files), plus sparse export and QAT on a real model."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.helpers import ROOT, artifact_of, read_report, run_edgekit, shared_model, stage_of

pytestmark = pytest.mark.slow


def test_full_chain_is_twenty_times_smaller_and_as_accurate(example_run):
    out, result = example_run("digits_full.yaml")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    teacher, final, baseline = (artifact_of(report, n) for n in ("teacher", "model.tflite", "baseline.tflite"))
    distill = stage_of(report, "distill")
    assert distill["details"]["student_params"] <= teacher["params"] / 4
    assert stage_of(report, "quantize")["details"]["scheme"].startswith("PQAT")
    assert final["gzip_bytes"] <= baseline["gzip_bytes"] / 20
    assert teacher["accuracy"] - final["accuracy"] <= 0.010
    assert final["io"]["inputs"][0]["dtype"] == "int8"
    assert final["weight_sparsity"] >= 0.74  # the pruned zeros survived QAT and conversion
    onnx = artifact_of(report, "model.onnx")
    assert teacher["accuracy"] - onnx["accuracy"] <= 0.015
    assert onnx["bytes"] <= 1.5 * final["bytes"]  # int8 weights in the .onnx too, not float


def test_channel_pruning_shrinks_the_raw_file(example_run):
    out, result = example_run("digits_channels.yaml")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    teacher, final, unpruned = (artifact_of(report, n) for n in ("teacher", "model.tflite", "baseline.tflite"))
    assert final["precision"] == unpruned["precision"] == "float32"
    assert final["bytes"] <= 0.6 * unpruned["bytes"]
    assert teacher["accuracy"] - final["accuracy"] <= 0.015
    assert final["params"] < 0.6 * teacher["params"]


def test_clustering_chain_uses_pcqat_and_gzips_smaller(example_run):
    out, result = example_run("digits_cluster.yaml")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert stage_of(report, "quantize")["details"]["scheme"].startswith("PCQAT")
    final = artifact_of(report, "model.tflite")
    assert final["gzip_bytes"] < 0.5 * final["bytes"]


def test_teacher_is_measured_untouched(example_run):
    teacher_file = ROOT / "sample_models" / "digits_cnn.keras"
    digest = hashlib.sha256(teacher_file.read_bytes()).hexdigest()
    out, result = example_run("digits_full.yaml")
    assert result.returncode == 0
    assert hashlib.sha256(teacher_file.read_bytes()).hexdigest() == digest

    from edgekit.backends import get_backend
    from edgekit.data import load_dataset
    from edgekit.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "digits_full.yaml")
    data = load_dataset(recipe.data, task="classification", seed=0, resolve=recipe.resolve_path)
    keras = get_backend("keras")
    accuracy = float((keras.predict(keras.load(teacher_file), data.x_test).argmax(1) == data.y_test).mean())
    assert artifact_of(read_report(out), "teacher")["accuracy"] == accuracy


def test_sparse_export_ships_a_smaller_file_that_runs(tmp_path):
    out = tmp_path / "sparse"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "stages=[{prune: {sparsity: 0.8, epochs: 2}}]", "--set", "export.sparse=true",
                         "--set", "gates={max_accuracy_drop: 0.02}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    final, baseline = artifact_of(report, "model.tflite"), artifact_of(report, "baseline.tflite")
    assert final["sparse_encoded"] is True and not report["warnings"]
    assert final["bytes"] < 0.5 * baseline["bytes"]  # float weights, 80% of them not stored
    assert final["weight_sparsity"] >= 0.79
    assert baseline["accuracy"] - final["accuracy"] <= 0.02  # measured by running the sparse file


def test_sparse_export_falls_back_to_dense_with_a_warning(tmp_path):
    out = tmp_path / "fallback"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "stages=[{prune: {sparsity: 0.5, schedule: constant, epochs: 1}}, quantize]",
                         "--set", "export.sparse=true", "--set", "export.formats=[tflite]",
                         "--set", "evaluate.runtimes=[litert]", "--set", "gates={}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    final = artifact_of(report, "model.tflite")
    assert final["sparse_encoded"] is False
    assert any("written dense" in w and "model.tflite" in w for w in report["warnings"])
    assert "## Warnings" in (out / "report.md").read_text()


def test_qat_on_the_real_wake_word_model(tmp_path):
    shared_model("tiny_sww/str_ww_ref_model.h5")
    out = tmp_path / "sww-qat"
    result = run_edgekit("compress", "recipes/tiny_sww.yaml", "--output", str(out), "-q",
                         "--set", "stages=[{quantize: {method: qat, epochs: 1, batch_size: 16}}]", "--set", "gates={}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert stage_of(report, "quantize")["details"]["scheme"].startswith("QAT")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(out / "model.tflite"))
    interpreter.allocate_tensors()
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert artifact_of(report, "model.tflite")["accuracy"] is not None
    assert (out / "model.onnx").stat().st_size > 0
