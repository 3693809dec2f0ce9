"""The torch sample teacher to an int8 .pte end to end (issue 15, acceptance 3): `edgekit compress`
with `export.formats: [pte]`, measured on ExecuTorch, in report.json, report.md and the model card,
and `edgekit inspect` on the shipped file. One run, quantize only (no training), about 30 s."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ROOT, artifact_of, read_report, run_edgekit

pytestmark = pytest.mark.slow

RECIPE = f"""version: 1
name: digits-torch-pte
seed: 0
data: {{source: digits, scale: 0.0625}}
teacher: {{path: {ROOT / "sample_models" / "digits_cnn_torch.pt2"}}}
stages:
  - quantize: {{method: ptq, precision: int8}}
export: {{formats: [pte]}}
evaluate: {{runtimes: [executorch]}}
gates: {{max_accuracy_drop: 0.01}}
"""


def test_torch_teacher_gives_an_int8_pte_measured_on_executorch(tmp_path):
    recipe, out = tmp_path / "recipe.yaml", tmp_path / "run"
    recipe.write_text(RECIPE, encoding="utf-8")

    result = run_edgekit("compress", str(recipe), "--output", str(out), "-q")
    inspected = run_edgekit("inspect", str(out / "model.pte"), "--json")

    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)
    teacher, final, baseline = (artifact_of(report, name) for name in ("teacher", "model.pte", "baseline.pte"))
    assert (final["runtime"], final["precision"], final["layout"]) == ("executorch", "int8", "nchw")
    assert teacher["accuracy"] - final["accuracy"] <= 0.01
    assert final["bytes"] <= 0.35 * baseline["bytes"]
    assert final["latency_ms"]["p50"] > 0 and baseline["latency_ms"]["p50"] > 0
    assert final["agreement"] >= 0.98
    assert "model.pte" in (out / "report.md").read_text() and "executorch" in (out / "report.md").read_text()
    card = json.loads((out / "model_card.json").read_text())["models"]["pte"]
    assert card["runtime"] == "executorch" and card["inputs"][0]["shape"] == [1, 1, 8, 8]
    assert card["quantization"] == "int8 (full integer)" and "XNNConv2d" in card["delegation"]["delegated_ops"]
    assert inspected.returncode == 0, inspected.stderr
    delegation = json.loads(inspected.stdout)["delegation"]
    assert {"XNNConv2d", "XNNFullyConnected", "XNNConvert"} <= set(delegation["delegated_ops"])
    assert delegation["non_delegated_ops"] == {}
    assert "Failed to load" not in inspected.stderr and "cpuinfo" not in result.stderr + inspected.stderr
