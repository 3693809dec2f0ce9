"""The benchmark suite still runs end to end (a reduced `--quick` run) and writes every section.

Only the shape of the results is checked: every section present, no section failed, numeric figures.
Timing targets are not asserted here (they depend on the machine); benchmarks/results/latest.md
records whether they are met."""

from __future__ import annotations

import json
import numbers
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow

SECTIONS = ("cli", "tfmot", "cache", "compression", "limits", "scale", "families", "accuracy_control", "search", "training", "streaming")


def _numbers(value) -> list:
    """Every real number (not a bool) anywhere inside a JSON value."""
    if isinstance(value, bool):
        return []
    if isinstance(value, numbers.Real):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def test_run_all_quick_writes_every_section(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["quick"] is True
    assert results["environment"]["packages"] and results["machine"]["cores"] and results["created"]
    assert set(results["sections"]) == set(SECTIONS)
    for name, section in results["sections"].items():
        assert "error" not in section, f"{name}: {section.get('error')}"
        assert section["table"].lstrip().startswith(("|", "Sample")), name
        assert _numbers(section), f"{name} has no numeric figures"
        for goal in section["targets"]:
            assert isinstance(goal["value"], numbers.Real) and isinstance(goal["met"], bool), (name, goal)

    sections = results["sections"]
    _cache_rows_check(results)
    tfmot = sections["tfmot"]["sides"]
    for side in ("plain", "edgekit_like"):
        assert tfmot[side]["wall_s"] > 0 and tfmot[side]["bytes"] > 0 and 0 < tfmot[side]["litert_accuracy"] <= 1
    assert sections["tfmot"]["ratio_like_with_like"] > 0
    rows = sections["compression"]["rows"]
    assert {r["variant"] for r in rows} >= {"teacher float32", "PTQ int8"}
    assert all(r["bytes"] > 0 and r["p50_ms_1_thread"] > 0 and r["p50_ms_2_threads"] > 0 for r in rows)
    assert all(r["int8_p50_ms_1_thread"] > 0 for r in sections["compression"]["conv32"])
    sizes = sections["limits"]["sizes"]
    assert sizes and all(s["bytes_per_param"] > 1 and s["params"] > 0 for s in sizes)
    assert all(s["macs"] > 0 and s["achieved_gmacs"] > 0 for s in sections["limits"]["speeds"])
    cli = sections["cli"]["commands"]
    assert all(c["median_s"] > 0 for c in cli.values())
    assert all(s["peak_rss_mib"] > 0 and s["ms_per_1k"] > 0 for s in sections["scale"]["streamed"])
    (cell,) = sections["families"]["rows"]
    int8 = cell["variants"]["int8"]
    assert int8["exit"] == 0 and int8["params"] > 0
    assert all(0 < int8[rt]["bytes_ratio"] < 1 and int8[rt]["p50_ms"] > 0 for rt in ("LiteRT", "ORT"))

    control = sections["accuracy_control"]["rows"]
    assert control and all(0 < r["max_drop_accuracy"] <= 1 and 0 < r["bytes_ratio"] < 1 and r["p50_ms"] > 0
                           and r["chosen"] for r in control)

    markdown = (tmp_path / "latest.md").read_text()
    assert "## Targets" in markdown and results["machine"]["cpu"] in markdown


def _cache_rows_check(results: dict) -> None:
    rows = results["sections"]["cache"]["recipes"]
    assert rows and all(r["cold_s"] > 0 and r["warm_s"] > 0 and r["identical_files"] for r in rows.values())
