"""`quantize: {keep_float, overrides}` through `edgekit compress` (issue 12, point 2; every precision
and override per framework and format: tests/contract/test_layer_precision.py):
the run records the resolved layers, the model card says what each layer of each shipped file
computes in (read from the file), the files keep the teacher's accuracy on their runtimes, and a
pattern that names no layer stops the run with exit code 2 before anything is written."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, artifact_of, read_report, run_edgekit, stage_of

pytestmark = pytest.mark.slow
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
MIXED = "stages=[{quantize: {keep_float: [logits], overrides: {conv2d: int16x8}}}]"


def test_a_mixed_plan_reaches_both_files_and_the_model_card(tmp_path):
    out = tmp_path / "mixed"
    result = run_edgekit("compress", QUICKSTART, "-o", str(out), "-q", "--set", MIXED, "--set", "gates={}")
    assert result.returncode == 0, result.stderr + result.stdout

    report = read_report(out)
    assert stage_of(report, "quantize")["details"]["layers"] == {"logits": "float", "conv2d": "int16x8"}
    card = json.loads((out / "model_card.json").read_text())
    for fmt in ("tflite", "onnx"):
        layers = {row["layer"]: row["precision"] for row in card["models"][fmt]["layers"]}
        assert layers == {"conv2d": "int16x8", "conv2d_1": "int8", "dense": "int8", "logits": "float"}, fmt
        final = artifact_of(report, f"model.{fmt}")
        assert final["accuracy"] >= artifact_of(report, "teacher")["accuracy"] - 0.01, fmt


def test_a_pattern_that_names_no_layer_stops_the_run_before_anything_is_written(tmp_path):
    out = tmp_path / "typo"
    result = run_edgekit("compress", QUICKSTART, "-o", str(out), "-q",
                         "--set", "stages=[{quantize: {keep_float: [logit]}}]")
    assert result.returncode == 2, result.stderr + result.stdout
    assert "quickstart.yaml" in result.stderr and "stages[0]" in result.stderr
    assert "keep_float: 'logit' matches no layer" in result.stderr
    assert "conv2d, conv2d_1, dense, logits" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
