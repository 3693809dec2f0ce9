"""The quickstart recipe end to end, as `make demo` runs it: the acceptance numbers are read from
report.json, which holds what LiteRT and ONNX Runtime measured on the exported files."""

from __future__ import annotations

import json

import pytest

from tests.helpers import artifact_of, read_report, run_edgekit

pytestmark = pytest.mark.slow

NOISE = ("oneDNN", "cuda", "XNNPACK", "absl::InitializeLog", "TensorFlow binary is optimized", "Traceback")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "quickstart"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "--json")
    return out, result


def test_quickstart_passes_and_writes_every_file(quickstart):
    out, result = quickstart
    assert result.returncode == 0, result.stderr
    for name in ("model.tflite", "model.onnx", "baseline.tflite", "baseline.onnx", "labels.txt",
                 "model_card.json", "report.json", "report.md", "recipe.resolved.yaml"):
        assert (out / name).is_file(), name
    summary = result.json()
    assert summary["passed"] is True and summary["exit_code"] == 0
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_quickstart_numbers_meet_the_acceptance_bar(quickstart):
    out, _ = quickstart
    report = read_report(out)
    teacher = artifact_of(report, "teacher")
    int8_tflite, float_tflite = artifact_of(report, "model.tflite"), artifact_of(report, "baseline.tflite")
    int8_onnx = artifact_of(report, "model.onnx")
    assert int8_tflite["runtime"] == "litert" and int8_onnx["runtime"] == "onnxruntime"
    assert teacher["accuracy"] - int8_tflite["accuracy"] <= 0.010
    assert int8_tflite["bytes"] <= 0.30 * float_tflite["bytes"]
    assert teacher["accuracy"] - int8_onnx["accuracy"] <= 0.015
    assert int8_tflite["io"]["inputs"][0]["dtype"] == "int8"
    assert int8_tflite["io"]["inputs"][0]["scale"] > 0
    latency = int8_tflite["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]
    assert latency["runs"] == 100 and latency["threads"] == 1


def test_quickstart_output_has_no_framework_noise(quickstart):
    _, result = quickstart
    for noise in NOISE:
        assert noise not in result.stderr, f"{noise!r} leaked to stderr:\n{result.stderr}"


def test_model_card_describes_the_shipped_tflite(quickstart):
    out, _ = quickstart
    card = json.loads((out / "model_card.json").read_text())
    tflite = card["models"]["tflite"]
    assert tflite["file"] == "model.tflite"
    assert tflite["inputs"][0]["shape"][1:] == [8, 8, 1]
    assert card["preprocessing"]["scale"] == 0.0625
    assert (out / "labels.txt").read_text().split() == [str(i) for i in range(10)]


def test_failing_gate_exits_1_and_keeps_artifacts(tmp_path):
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", "gates.min_accuracy=0.9999", "--set", "export.formats=[tflite]",
                         "--set", "evaluate.runtimes=[litert]")
    assert result.returncode == 1, result.stderr
    report = read_report(out)
    assert report["passed"] is False
    failed = [g for g in report["gates"] if not g["passed"]]
    assert [g["gate"] for g in failed] == ["min_accuracy"]
    assert (out / "model.tflite").stat().st_size > 0 and "FAIL" in (out / "report.md").read_text()


def test_recipe_error_exits_2_naming_the_key(tmp_path):
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(tmp_path / "run"),
                         "--set", "stages.0.quantize.precison=int8")
    assert result.returncode == 2
    assert "precison" in result.stderr and "did you mean 'precision'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_run_leaves_the_previous_run_untouched(quickstart, tmp_path):
    out, _ = quickstart
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out),
                         "--set", "teacher.path=sample_models/missing.keras")
    assert result.returncode == 2
    assert "missing.keras" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in out.parent.iterdir() if ".tmp-" in p.name]
