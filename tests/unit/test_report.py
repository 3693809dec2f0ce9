"""edgekit.report: report.json -> report.md, a pure function of a hand-made report dict."""

from __future__ import annotations

import json

import pytest

from edgekit.report import SCHEMA, load_report, render_markdown, write_report

ARTIFACT_NAMES = ["teacher", "baseline.tflite", "baseline.onnx", "model.tflite", "model.onnx"]


def make_report(passed: bool = False, warnings=None, gates=None, metric: str = "accuracy") -> dict:
    quality = "accuracy" if metric == "accuracy" else "mae"
    latency = {"p50": 0.42, "p90": 0.5, "p99": 0.61, "warmup": 10, "runs": 100, "threads": 1, "batch": 1}
    artifacts = [
        {"name": "teacher", "role": "teacher", "format": "keras", "runtime": "keras", quality: 0.97},
        {"name": "baseline.tflite", "role": "baseline", "format": "tflite", "runtime": "litert",
         "precision": "float32", "bytes": 200_000, "gzip_bytes": 180_000, quality: 0.97, "agreement": 1.0,
         "latency_ms": latency},
        {"name": "baseline.onnx", "role": "baseline", "format": "onnx", "runtime": "onnxruntime",
         "precision": "float32", "bytes": 210_000, quality: 0.97, "agreement": 1.0, "latency_ms": latency},
        {"name": "model.tflite", "role": "final", "format": "tflite", "runtime": "litert", "precision": "int8",
         "bytes": 51_234, "gzip_bytes": 40_000, "params": 12_345, quality: 0.965, "agreement": 0.99,
         "latency_ms": latency},
        {"name": "model.onnx", "role": "final", "format": "onnx", "runtime": "onnxruntime", "precision": "int8",
         "bytes": 60_000, quality: 0.96, "agreement": 0.985, "latency_ms": latency},
    ]
    if gates is None:
        gates = [
            {"gate": "max_size", "artifact": "model.tflite", "limit": 64_000, "value": 51_234, "unit": "bytes",
             "passed": True},
            {"gate": "min_accuracy", "artifact": "model.onnx", "limit": 0.97, "value": 0.96, "unit": "accuracy",
             "passed": False},
        ]
    return {
        "schema": SCHEMA,
        "edgekit_version": "0.1.0",
        "name": "digits-int8",
        "created": "2025-01-01T00:00:00+00:00",
        "task": "classification" if metric == "accuracy" else "regression",
        "metric": metric,
        "environment": {"platform": "Linux-x86_64", "cpu": "test cpu", "cores": 4, "python": "3.11.9",
                        "packages": {"numpy": "1.26.4"}},
        "data": {"description": "digits", "train": 1293, "validation": 144, "test": 360, "calibration": 256,
                 "input_shape": [8, 8, 1], "num_classes": 10},
        "stages": [{"name": "teacher", "summary": "loaded digits_cnn.keras", "wall_s": 1.25,
                    "metrics": {"params": 12345}},
                   {"name": "quantize", "summary": "ptq int8", "wall_s": 0.01, "metrics": {}}],
        "artifacts": artifacts,
        "gates": gates,
        "warnings": [] if warnings is None else warnings,
        "exit_code": 0 if passed else 1,
        "passed": passed,
    }


def section(markdown: str, title: str) -> str:
    """The text of one `## title` section."""
    start = markdown.index(f"## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:] if end == -1 else markdown[start:end]


def test_failing_report_says_fail_with_its_exit_code():
    markdown = render_markdown(make_report(passed=False))

    assert "**FAIL: a gate failed** (exit code 1)" in markdown
    assert "PASS" not in markdown
    assert markdown.startswith("# edgekit report: digits-int8\n")


def test_passing_report_says_pass():
    gates = [{"gate": "max_size", "artifact": "model.tflite", "limit": 64_000, "value": 51_234, "unit": "bytes",
              "passed": True}]

    markdown = render_markdown(make_report(passed=True, gates=gates))

    assert "**PASS: every gate passed** (exit code 0)" in markdown
    assert "FAIL" not in markdown


def test_every_artifact_has_a_row():
    table = section(render_markdown(make_report()), "Artifacts")

    for name in ARTIFACT_NAMES:
        assert f"\n| {name} |" in table
    final_row = next(line for line in table.splitlines() if line.startswith("| model.tflite |"))
    assert "| final | litert | int8 | 51,234 | 40,000 | 12,345 | 96.50% | 99.00% | 0.42 |" in final_row


def test_gate_table_marks_the_failing_gate():
    gates = section(render_markdown(make_report()), "Gates")
    rows = {line.split("|")[1].strip(): line for line in gates.splitlines() if line.startswith("| ") and "---" not in line}

    assert rows["min_accuracy"].rstrip().endswith("| **FAIL** |")
    assert "| model.onnx |" in rows["min_accuracy"]
    assert rows["max_size"].rstrip().endswith("| pass |")
    assert "| 64,000 | 51,234 | bytes |" in rows["max_size"]


def test_no_gates_is_said_plainly():
    markdown = render_markdown(make_report(passed=True, gates=[]))

    assert "No gates were set" in section(markdown, "Gates")
    assert "**FAIL**" not in markdown


def test_warnings_section_only_when_there_are_warnings():
    with_warnings = render_markdown(make_report(warnings=["calibration used 100 samples", "onnx fell back"]))
    without = render_markdown(make_report(warnings=[]))
    no_key = make_report()
    del no_key["warnings"]

    assert "## Warnings" in with_warnings
    assert "- calibration used 100 samples\n" in section(with_warnings, "Warnings")
    assert "- onnx fell back" in section(with_warnings, "Warnings")
    assert "## Warnings" not in without
    assert "## Warnings" not in render_markdown(no_key)


def test_summary_line_for_the_final_tflite():
    markdown = render_markdown(make_report())

    assert "Final .tflite: 50.0 KiB (39.1 KiB gzipped), accuracy 96.50% on litert." in markdown


def test_regression_report_shows_mae():
    markdown = render_markdown(make_report(metric="mae"))

    assert "| MAE |" in section(markdown, "Artifacts")
    row = next(line for line in markdown.splitlines() if line.startswith("| model.onnx |"))
    assert "| 0.96 |" in row
    assert "%" not in row.split("|")[8]  # the MAE column is not a percentage


def test_stages_data_and_environment_sections():
    markdown = render_markdown(make_report())

    assert "| teacher | loaded digits_cnn.keras | 1.25 s | params 12,345 |" in section(markdown, "Stages")
    assert "1293 train, 144 validation, 360 test, 256 calibration" in section(markdown, "Data")
    assert "| numpy | 1.26.4 |" in section(markdown, "Environment")


def test_the_stages_section_says_where_training_ran():
    mixed = {**make_report(), "compute": {"device": "cpu", "precision": "mixed", "compute_dtype": "bfloat16"}}
    assert ("Training ran on the CPU in mixed precision (bfloat16 compute, float32 weights)"
            in section(render_markdown(mixed), "Stages"))
    on_gpu = {**make_report(), "compute": {"device": "cuda:1", "precision": "float32", "compute_dtype": "float32"}}
    assert "Training ran on the GPU cuda:1 in float32" in section(render_markdown(on_gpu), "Stages")
    assert "Training ran" not in render_markdown(make_report())  # reports from before `compute:`


def test_write_and_load_round_trip(tmp_path):
    report = make_report(warnings=["w"])

    write_report(tmp_path, report)

    assert load_report(tmp_path / "report.json") == report
    assert load_report(tmp_path) == report  # a run directory finds its report.json
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == render_markdown(report)
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["schema"] == "edgekit.report/1"


def test_write_report_overwrites_a_previous_report(tmp_path):
    write_report(tmp_path, make_report(passed=False))
    write_report(tmp_path, make_report(passed=True, gates=[]))

    assert load_report(tmp_path)["passed"] is True
    assert "PASS" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_load_report_of_a_directory_without_report_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_report(tmp_path)
