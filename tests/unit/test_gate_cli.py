"""`edgekit gate` through click's CliRunner, on hand-made report.json files and model files of arbitrary
bytes (size gates only read a file's size), so no framework or runtime is imported.

Exit codes (DESIGN.md): 0 every gate passed, 1 a gate failed, 2 bad input without a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli.gate import gate_command, parse_growth
from edgekit.gates import regression_gates

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str):
    return CliRunner().invoke(gate_command, [str(a) for a in args], catch_exceptions=False)


def model_file(folder: Path, n_bytes: int, name: str = "x.tflite") -> Path:
    path = folder / name
    path.write_bytes(b"\0" * n_bytes)
    return path


def artifact(name, role, fmt, size=None, accuracy=None, p50=None):
    entry = {"name": name, "role": role, "format": fmt, "bytes": size, "accuracy": accuracy}
    if p50 is not None:
        entry["latency_ms"] = {"p50": p50, "p90": p50, "p99": p50}
    return entry


def make_report(tflite_bytes=100_000, onnx_bytes=120_000, tflite_acc=0.96, onnx_acc=0.95, teacher_acc=0.97):
    return {
        "schema": "edgekit.report/1",
        "metric": "accuracy",
        "artifacts": [
            artifact("teacher", "teacher", "keras", accuracy=teacher_acc),
            artifact("baseline.tflite", "baseline", "tflite", size=400_000, accuracy=teacher_acc, p50=3.0),
            artifact("model.tflite", "final", "tflite", size=tflite_bytes, accuracy=tflite_acc, p50=1.5),
            artifact("model.onnx", "final", "onnx", size=onnx_bytes, accuracy=onnx_acc, p50=2.0),
        ],
    }


def write_report(folder: Path, report: dict, name: str = "report.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(report))
    return path


def gates_json(result) -> dict:
    return json.loads(result.stdout)


# ---- --max-size on a model file, each unit ---------------------------------------------------

@pytest.mark.parametrize(
    ("limit", "limit_bytes"),
    [("1000", 1000), ("64KB", 64_000), ("64KiB", 65_536), ("0.5MB", 500_000)],
)
@pytest.mark.parametrize(("delta", "code"), [(-1, 0), (0, 0), (1, 1)])
def test_max_size_on_a_model_file_for_each_unit(tmp_path, limit, limit_bytes, delta, code):
    model = model_file(tmp_path, limit_bytes + delta)

    result = invoke(model, "--max-size", limit, "--json")

    assert result.exit_code == code, result.output
    data = gates_json(result)
    assert data["exit_code"] == code and data["passed"] is (code == 0)
    (gate,) = data["gates"]
    assert gate == {"gate": "max_size", "artifact": "x.tflite", "limit": limit_bytes, "value": limit_bytes + delta,
                    "unit": "bytes", "passed": code == 0}


def test_human_output_has_one_line_per_gate_with_limit_and_value(tmp_path):
    report = write_report(tmp_path, make_report(tflite_bytes=70_000, onnx_bytes=60_000))

    result = invoke(report, "--max-size", "64KB")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "FAIL max_size[model.tflite]: limit <= 64000, value 70000 [bytes]" in lines
    assert "pass max_size[model.onnx]: limit <= 64000, value 60000 [bytes]" in lines
    assert "1/2 gates passed" in lines


# ---- report gates ----------------------------------------------------------------------------

def test_a_run_directory_is_read_through_its_report_json(tmp_path):
    write_report(tmp_path / "run", make_report())

    result = invoke(tmp_path / "run", "--min-accuracy", "0.95", "--max-size", "200KB", "--json")

    assert result.exit_code == 0, result.output
    assert [(g["gate"], g["artifact"]) for g in gates_json(result)["gates"]] == [
        ("max_size", "model.tflite"), ("max_size", "model.onnx"),
        ("min_accuracy", "model.tflite"), ("min_accuracy", "model.onnx")]


def test_min_accuracy_fails_the_artifact_below_it(tmp_path):
    report = write_report(tmp_path, make_report(onnx_acc=0.94))

    result = invoke(report, "--min-accuracy", "0.95", "--json")

    assert result.exit_code == 1
    failed = [g["artifact"] for g in gates_json(result)["gates"] if not g["passed"]]
    assert failed == ["model.onnx"]


def test_max_accuracy_drop_without_a_baseline_is_against_the_teacher(tmp_path):
    # teacher 0.97: model.tflite drops 0.01, model.onnx 0.02
    report = write_report(tmp_path, make_report())

    result = invoke(report, "--max-accuracy-drop", "0.015", "--json")

    assert result.exit_code == 1
    gates = {g["artifact"]: g for g in gates_json(result)["gates"]}
    assert gates["model.tflite"]["gate"] == "max_accuracy_drop" and gates["model.tflite"]["passed"] is True
    assert gates["model.onnx"]["value"] == pytest.approx(0.02) and gates["model.onnx"]["passed"] is False


def test_max_latency_on_a_report_reads_the_litert_p50(tmp_path):
    report = write_report(tmp_path, make_report())

    passed = invoke(report, "--max-latency-ms", "1.5", "--json")
    failed = invoke(report, "--max-latency-ms", "1.4", "--json")

    assert passed.exit_code == 0 and failed.exit_code == 1
    assert gates_json(failed)["gates"][0]["value"] == 1.5


# ---- --baseline: growth and accuracy drop ----------------------------------------------------

@pytest.mark.parametrize(("max_growth", "code"), [("5%", 1), ("0.05", 1), ("15%", 0), ("0.15", 0)])
def test_ten_percent_growth_against_the_baseline(tmp_path, max_growth, code):
    old = write_report(tmp_path / "old", make_report(tflite_bytes=100_000, onnx_bytes=120_000))
    new = write_report(tmp_path / "new", make_report(tflite_bytes=110_000, onnx_bytes=120_000))

    result = invoke(new, "--baseline", old, "--max-growth", max_growth, "--json")

    assert result.exit_code == code, result.output
    gates = {g["artifact"]: g for g in gates_json(result)["gates"]}
    assert gates["model.tflite"]["gate"] == "max_growth"
    assert gates["model.tflite"]["value"] == pytest.approx(0.10)
    assert gates["model.tflite"]["passed"] is (code == 0)
    assert gates["model.onnx"]["value"] == 0.0 and gates["model.onnx"]["passed"] is True


def test_accuracy_drop_against_the_baselines_same_artifact(tmp_path):
    # the teacher would allow both (drops of 0.01 / 0.02 vs 0.97 are not what is judged here)
    old = write_report(tmp_path / "old", make_report(tflite_acc=0.96, onnx_acc=0.95))
    new = write_report(tmp_path / "new", make_report(tflite_acc=0.955, onnx_acc=0.93))

    result = invoke(new, "--baseline", old, "--max-accuracy-drop", "0.01", "--json")

    assert result.exit_code == 1
    gates = {g["artifact"]: g for g in gates_json(result)["gates"]}
    assert {g["gate"] for g in gates.values()} == {"max_accuracy_drop_vs_baseline"}
    assert gates["model.tflite"]["value"] == pytest.approx(0.005) and gates["model.tflite"]["passed"] is True
    assert gates["model.onnx"]["value"] == pytest.approx(0.02) and gates["model.onnx"]["passed"] is False


def test_an_artifact_new_since_the_baseline_is_not_compared(tmp_path):
    baseline = make_report()
    baseline["artifacts"] = [a for a in baseline["artifacts"] if a["name"] != "model.onnx"]
    old = write_report(tmp_path / "old", baseline)
    new = write_report(tmp_path / "new", make_report())

    result = invoke(new, "--baseline", old, "--max-growth", "5%", "--json")

    assert result.exit_code == 0
    assert [g["artifact"] for g in gates_json(result)["gates"]] == ["model.tflite"]


def test_a_baseline_sharing_no_artifact_fails_instead_of_passing(tmp_path):
    baseline = make_report()
    for a in baseline["artifacts"]:
        a["name"] = "other_" + a["name"]
    old = write_report(tmp_path / "old", baseline)
    new = write_report(tmp_path / "new", make_report())

    result = invoke(new, "--baseline", old, "--max-growth", "50%", "--json")

    assert result.exit_code == 1
    assert all(g["value"] is None and not g["passed"] for g in gates_json(result)["gates"])


def test_a_model_file_against_a_baseline_uses_the_artifact_of_its_format(tmp_path):
    old = write_report(tmp_path / "old", make_report(tflite_bytes=1_000, onnx_bytes=5_000))
    model = model_file(tmp_path, 1_100, "candidate.tflite")

    result = invoke(model, "--baseline", old, "--max-growth", "5%", "--json")

    assert result.exit_code == 1
    (gate,) = gates_json(result)["gates"]
    assert (gate["gate"], gate["artifact"], gate["passed"]) == ("max_growth", "candidate.tflite", False)
    assert gate["value"] == pytest.approx(0.10)


def test_regression_gates_is_a_pure_function_with_mae(tmp_path):
    old = {"metric": "mae", "artifacts": [{"name": "m.tflite", "role": "final", "format": "tflite",
                                           "bytes": 100, "mae": 0.50}]}
    new = {"metric": "mae", "artifacts": [{"name": "m.tflite", "role": "final", "format": "tflite",
                                           "bytes": 100, "mae": 0.53}]}

    (result,) = regression_gates(new, old, max_accuracy_drop=0.02)

    assert result["value"] == pytest.approx(0.03) and result["passed"] is False
    assert result["unit"] == "mae vs baseline"


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), ("0", 0.0)])
def test_parse_growth(text, value):
    assert parse_growth(text) == pytest.approx(value)


# ---- JUnit -----------------------------------------------------------------------------------

def test_junit_is_written_even_when_a_gate_fails(tmp_path):
    report = write_report(tmp_path, make_report(tflite_bytes=70_000, onnx_bytes=60_000))
    junit = tmp_path / "out" / "gate.xml"

    result = invoke(report, "--max-size", "64KB", "--min-accuracy", "0.9", "--junit", junit)

    assert result.exit_code == 1
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite.get("name") == "edgekit gate"
    assert (suite.get("tests"), suite.get("failures")) == ("4", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"max_size[model.tflite]", "max_size[model.onnx]",
                          "min_accuracy[model.tflite]", "min_accuracy[model.onnx]"}
    assert all(c.get("classname") == "edgekit.gate" for c in cases.values())
    failure = cases["max_size[model.tflite]"].find("failure")
    assert failure is not None and "70000" in failure.get("message") and "64000" in failure.get("message")
    assert all(cases[name].find("failure") is None for name in cases if name != "max_size[model.tflite]")


# ---- bad input: exit 2, a message, no traceback ----------------------------------------------

def assert_usage_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for fragment in fragments:
        assert fragment in result.output


def test_missing_model_file(tmp_path):
    assert_usage_error(invoke(tmp_path / "nope.tflite", "--max-size", "1KB"), "nope.tflite", "not found")


def test_missing_report(tmp_path):
    assert_usage_error(invoke(tmp_path / "nope.json", "--max-size", "1KB"), "nope.json", "not found")


def test_run_directory_without_a_report(tmp_path):
    assert_usage_error(invoke(tmp_path, "--max-size", "1KB"), "report.json")


def test_invalid_json(tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text("{not json")

    assert_usage_error(invoke(bad, "--max-size", "1KB"), "report.json", "not valid JSON")


def test_invalid_baseline_json(tmp_path):
    report = write_report(tmp_path, make_report())
    bad = tmp_path / "old.json"
    bad.write_text("[1, 2")

    assert_usage_error(invoke(report, "--baseline", bad, "--max-growth", "5%"), "old.json", "not valid JSON")


def test_json_that_is_not_a_report(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')

    assert_usage_error(invoke(other, "--max-size", "1KB"), "not an edgekit report")


def test_no_gate_given(tmp_path):
    report = write_report(tmp_path, make_report())

    assert_usage_error(invoke(report), "no gate given")


def test_unknown_size_unit(tmp_path):
    model = model_file(tmp_path, 10)

    assert_usage_error(invoke(model, "--max-size", "64XB"), "--max-size", "64XB")


@pytest.mark.parametrize("growth", ["5", "five%", "-5%"])
def test_bad_growth(tmp_path, growth):
    report = write_report(tmp_path, make_report())

    assert_usage_error(invoke(report, "--baseline", report, "--max-growth", growth), "--max-growth")


def test_max_growth_needs_a_baseline(tmp_path):
    report = write_report(tmp_path, make_report())

    assert_usage_error(invoke(report, "--max-growth", "5%"), "--baseline")


@pytest.mark.parametrize("option", [("--min-accuracy", "0.9"), ("--max-accuracy-drop", "0.01")])
def test_accuracy_gates_on_a_model_file_need_a_report(tmp_path, option):
    model = model_file(tmp_path, 10)

    assert_usage_error(invoke(model, *option), "need a report")


def test_unknown_target_kind(tmp_path):
    other = tmp_path / "model.bin"
    other.write_bytes(b"123")

    assert_usage_error(invoke(other, "--max-size", "1KB"), "model.bin")


def test_a_report_without_final_artifacts(tmp_path):
    report = make_report()
    report["artifacts"] = [a for a in report["artifacts"] if a["role"] != "final"]

    assert_usage_error(invoke(write_report(tmp_path, report), "--max-size", "1MB"), "no final artifacts")


# ---- stays light -----------------------------------------------------------------------------

def test_size_gate_on_a_model_file_imports_no_runtime(tmp_path):
    model = model_file(tmp_path, 100)
    code = (
        "import sys\n"
        "from edgekit.cli.gate import gate_command\n"
        "try:\n"
        f"    gate_command([{str(model)!r}, '--max-size', '1KB'])\n"
        "except SystemExit as exc:\n"
        "    rc = exc.code\n"
        "heavy = {'tensorflow', 'torch', 'onnxruntime', 'ai_edge_litert', 'onnx'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
        "sys.exit(rc)\n"
    )

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
