"""How report.md and report.html show per-layer quantization: the plans a `max_drop` search tried
(the quantize stage's `accuracy_control`) and the ranking `edgekit analyze` writes (`analysis`)."""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown

ANALYSIS = json.loads((Path(__file__).parents[1] / "browser" / "data" / "analysis_report.json").read_text())
CONTROL = {
    "max_drop": 0.01, "split": "validation", "float_accuracy": 0.97917, "met": True,
    "chosen": "cross-layer equalization", "sensitivity": [],
    "attempts": [
        {"attempt": "as planned", "plan": {"precision": "int8", "layers": {}}, "drop": 0.26389,
         "formats": {"tflite": {"accuracy": 0.71528, "drop": 0.26389, "bytes": 160696, "p50_ms": 0.00996},
                     "onnx": {"accuracy": 0.71528, "drop": 0.26389, "bytes": 160861, "p50_ms": 0.0328}}},
        {"attempt": "cross-layer equalization", "plan": {"precision": "int8", "layers": {}}, "drop": -0.00694,
         "formats": {"tflite": {"accuracy": 0.98611, "drop": -0.00694, "bytes": 160696, "p50_ms": 0.01008},
                     "onnx": {"accuracy": 0.98611, "drop": -0.00694, "bytes": 160864, "p50_ms": 0.0245}}}]}
EQUALIZED = [{"first": "conv2d", "second": "conv2d_1", "imbalance_before": 210.43, "imbalance_after": 1.28}]


def _controlled() -> dict:
    report = {key: value for key, value in ANALYSIS.items() if key != "analysis"}
    report["stages"] = [{"name": "quantize", "summary": "ptq int8 (io int8, per-channel, max_drop 0.01)",
                         "details": {"equalized": EQUALIZED, "accuracy_control": CONTROL}, "metrics": {}, "wall_s": 7.3}]
    return report


def test_the_search_is_a_table_with_the_chosen_plan_marked():
    markdown = render_markdown(_controlled())
    assert "## Quantization sensitivity" in markdown
    assert "max_drop 0.01: plans tried on the validation split; met by cross-layer equalization." in markdown
    assert "| as planned | - | tflite +26.39, onnx +26.39 | tflite 160,696, onnx 160,861 |" in markdown
    assert "| **cross-layer equalization** | - | tflite -0.69, onnx -0.69 |" in markdown

    html = render_html(_controlled())
    assert '<section id="sensitivity"' in html and 'class="pill pass">chosen</span>' in html
    assert "conv2d → conv2d_1 (range imbalance 210.43 → 1.28)" in html
    assert "max drop" not in html and "accuracy control" not in html  # the record is not dumped in the stage table


def test_an_analysis_is_ranked_most_sensitive_first_in_both_pages():
    markdown = render_markdown(ANALYSIS)
    rows = [line for line in markdown.splitlines() if line.startswith("| conv2d") or line.startswith("| dense")
            or line.startswith("| logits")]
    assert [row.split(" | ")[0] for row in rows] == ["| conv2d_1", "| conv2d", "| dense", "| logits"]
    assert "## Artifacts" not in markdown  # analyze ships no file
    html = render_html(ANALYSIS)
    assert 'id="plot-sensitivity"' in html and 'id="sensitivity-table"' in html
    assert "No data to plot" not in html
    for page in (markdown, html):
        assert render_markdown({**ANALYSIS, "analysis": None}).count("Quantization sensitivity") == 0
        assert "qdq_loss_debug" in page
