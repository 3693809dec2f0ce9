"""edgekit.cli through click's CliRunner: commands, exit codes (DESIGN.md) and messages without tracebacks."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli import main

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"

MINIMAL = "version: 1\nteacher:\n  path: model.keras\n"


@pytest.fixture(autouse=True)
def _restore_process_state(monkeypatch):
    """`compress` installs a SIGTERM handler and --debug sets EDGEKIT_DEBUG: undo both after each test."""
    handler = signal.getsignal(signal.SIGTERM)
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    yield
    signal.signal(signal.SIGTERM, handler)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_the_commands():
    result = invoke("--help")

    assert result.exit_code == 0
    for command in ("compress", "validate", "report"):
        assert f"  {command} " in result.output


def test_version():
    result = invoke("--version")

    assert result.exit_code == 0
    assert "0.1.0" in result.output


def test_validate_quickstart_with_an_absolute_path():
    result = invoke("validate", str(QUICKSTART))

    assert result.exit_code == 0, result.output
    assert "valid recipe 'quickstart'" in result.output
    assert "keras teacher" in result.output
    assert "quantize.ptq" in result.output


def test_validate_quickstart_from_the_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)

    result = invoke("validate", "recipes/quickstart.yaml")

    assert result.exit_code == 0, result.output


def test_validate_applies_set_overrides(tmp_path):
    result = invoke("validate", str(QUICKSTART), "--set", "gates.min_accuracy=2")

    assert result.exit_code == 2
    assert "gates.min_accuracy" in result.output


def test_validate_unknown_key_exits_2_without_traceback(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(MINIMAL + "data:\n  calibraton_samples: 10\n")

    result = invoke("validate", str(recipe))

    assert result.exit_code == 2
    assert "calibraton_samples" in result.output
    assert "calibration_samples" in result.output  # the hint
    assert "error:" in result.output
    assert "Traceback" not in result.output


def test_validate_unsupported_stage_for_the_framework_exits_2(tmp_path):
    recipe = tmp_path / "torch.yaml"
    recipe.write_text(MINIMAL.replace("model.keras", "model.pt2") + "stages:\n  - cluster: {}\n")

    result = invoke("validate", str(recipe))

    assert result.exit_code == 2
    assert "'cluster' stage is not available for torch" in result.output
    assert "Traceback" not in result.output


def test_compress_missing_recipe_exits_2(tmp_path):
    missing = tmp_path / "nope.yaml"

    result = invoke("compress", str(missing))

    assert result.exit_code == 2
    assert "nope.yaml" in result.output
    assert "no such recipe file" in result.output
    assert "Traceback" not in result.output


def test_compress_unsupported_stage_exits_2_before_importing_a_framework(tmp_path, monkeypatch):
    tf_was_loaded = "tensorflow" in sys.modules
    torch_was_loaded = "torch" in sys.modules
    recipe = tmp_path / "torch.yaml"
    recipe.write_text(MINIMAL.replace("model.keras", "model.pt2") + "stages:\n  - cluster: {}\n")
    monkeypatch.chdir(tmp_path)

    result = invoke("compress", str(recipe))

    assert result.exit_code == 2
    assert "'cluster' stage is not available for torch" in result.output
    if not torch_was_loaded:
        assert "torch" not in sys.modules
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing was written
    if not tf_was_loaded:
        assert "tensorflow" not in sys.modules


def test_report_without_report_json_exits_2(tmp_path):
    result = invoke("report", str(tmp_path))

    assert result.exit_code == 2
    assert "no report.json" in result.output
    assert not (tmp_path / "report.md").exists()


def test_report_with_invalid_json_exits_2(tmp_path):
    (tmp_path / "report.json").write_text("{not json")

    result = invoke("report", str(tmp_path))

    assert result.exit_code == 2
    assert "not valid JSON" in result.output
    assert "Traceback" not in result.output


def test_report_renders_report_md(tmp_path):
    report = {
        "name": "cli-run",
        "passed": False,
        "exit_code": 1,
        "metric": "accuracy",
        "artifacts": [{"name": "model.tflite", "role": "final", "format": "tflite", "runtime": "litert",
                       "bytes": 1000, "accuracy": 0.9}],
        "gates": [{"gate": "min_accuracy", "artifact": "model.tflite", "limit": 0.95, "value": 0.9,
                   "unit": "accuracy", "passed": False}],
        "stages": [],
    }
    (tmp_path / "report.json").write_text(json.dumps(report))

    result = invoke("report", str(tmp_path))

    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "# edgekit report: cli-run" in markdown
    assert "**FAIL**" in markdown
    assert "report.md" in result.output


def test_validate_infinite_max_size_exits_2(tmp_path):
    recipe = tmp_path / "inf.yaml"
    recipe.write_text(MINIMAL + "gates:\n  max_size: .inf\n")

    result = invoke("validate", str(recipe))

    assert result.exit_code == 2
    assert "gates.max_size" in result.output


def test_init_writes_a_commented_recipe_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "recipe.yaml"

    first = invoke("init", "--framework", "torch", "--output", str(target))
    second = invoke("init", "--output", str(target))

    assert first.exit_code == 0 and "framework: torch" in target.read_text()
    assert target.read_text().lstrip().startswith("#")
    assert invoke("validate", str(target)).exit_code == 0
    assert second.exit_code == 2 and "--force" in second.output
    assert invoke("init", "--output", str(target), "--force").exit_code == 0
    assert "framework: keras" in target.read_text()


def test_validate_names_a_missing_file_by_its_key(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\nteacher:\n  path: model.keras\ndata:\n  source: npz\n  path: absent.npz\n")
    (tmp_path / "model.keras").write_bytes(b"")

    result = invoke("validate", str(recipe))

    assert result.exit_code == 2
    assert "line 6, data.path" in result.output and "absent.npz" in result.output
