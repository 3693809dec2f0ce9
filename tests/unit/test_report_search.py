"""How report.md, report.html and the plots show the `search` section `edgekit search` writes: the
summary, the Pareto points with the chosen trial marked, the failed trials and the Pareto plot.

The report is a real run's (tests/browser/data/report.json) with a hand-made search of six trials:
  trial 2  pareto, misses a gate      trial 5  meets every gate, dominated by 7
  trial 4  pareto, meets every gate   trial 7  pareto, meets every gate, chosen
  trial 6  pareto, meets every gate   trial 9  failed
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown
from edgekit.report.plots import report_plots

RUN = json.loads((Path(__file__).parents[1] / "browser" / "data" / "report.json").read_text(encoding="utf-8"))
ERROR = "stages[1].prune: sparsity 0.9 left conv2d without weights (exit 2)"


def point(trial: int, width: float, size: int, accuracy: float, p50: float, *, feasible: bool, pareto: bool) -> dict:
    return {"trial": trial, "state": "complete",
            "params": {"stages.0.distill.student.width": width, "stages.2.quantize.precision": "int8"},
            "values": {"size": size, "accuracy": accuracy}, "bytes": size, "p50_ms": p50, "accuracy": accuracy,
            "mae": None, "feasible": feasible, "violation": 0.0 if feasible else 0.01, "pareto": pareto,
            "wall_s": 18.2, "error": None}


def make_report(**search) -> dict:
    """report.json of the chosen trial (7) with its search section; `search` overrides its fields."""
    points = [
        point(2, 0.25, 14_112, 0.9375, 0.0013, feasible=False, pareto=True),
        point(4, 0.75, 88_420, 0.9792, 0.0041, feasible=True, pareto=True),
        point(5, 0.5, 91_020, 0.9722, 0.0087, feasible=True, pareto=False),
        point(6, 1.0, 120_550, 0.9861, 0.0062, feasible=True, pareto=True),
        point(7, 0.5, 46_336, 0.9722, 0.0024, feasible=True, pareto=True),
        {"trial": 9, "state": "failed", "params": {"stages.0.distill.student.width": 0.25}, "values": None,
         "bytes": None, "p50_ms": None, "accuracy": None, "mae": None, "feasible": False, "violation": None,
         "pareto": False, "wall_s": 2.1, "error": ERROR},
    ]
    section = {"split": "validation", "trials": 6, "completed": 5, "failed": 1, "workers": 2, "sampler": "nsga2",
               "seed": 0, "wall_s": 312.4,
               "objectives": [{"name": "size", "format": "tflite", "direction": "minimize",
                               "label": "model.tflite bytes"},
                              {"name": "accuracy", "format": "tflite", "direction": "maximize",
                               "label": "accuracy (model.tflite on litert, validation)"}],
               "select": "size", "feasible": True, "chosen": 7, "cache": {"trained_steps": 20, "cached_steps": 41},
               "points": points}
    return {**copy.deepcopy(RUN), "search": {**section, **search}}


def md_section(markdown: str, title: str) -> str:
    start = markdown.index(f"## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:] if end == -1 else markdown[start:end]


def html_section(html: str, key: str) -> str:
    match = re.search(rf'<section id="{key}".*?</section>', html, re.S)
    assert match, f"no section {key}"
    return match.group(0)


def search_plot(report: dict):
    return next((plot for plot in report_plots(report) if plot.key == "search-pareto"), None)


def test_the_pareto_plot_comes_first_and_its_alt_text_names_the_counts():
    plots = report_plots(make_report())

    assert plots[0].key == "search-pareto" and plots[0].wide
    title = re.search(r'<title id="svg-title-search-pareto">([^<]+)</title>', plots[0].svg).group(1)
    assert "against file size (log scale) and p50 latency per batch (ms)" in title
    assert "5 completed search trials of 6: 4 meet every gate, 4 are Pareto points" in title
    assert "trial 7 was chosen; 1 failed trial(s) not drawn" in title
    assert "chosen (trial 7)" in plots[0].svg
    assert "Failed trials are not drawn" in plots[0].caption and "validation split" in plots[0].caption


def test_without_latencies_the_plot_has_one_panel():
    report = make_report()
    for p in report["search"]["points"]:
        p["p50_ms"] = None

    plot = search_plot(report)

    assert plot is not None and not plot.wide
    assert "latency" not in re.search(r"<title[^>]*>([^<]+)</title>", plot.svg).group(1)


def test_a_search_whose_trials_all_failed_has_no_plot():
    report = make_report(completed=0, failed=1, chosen=None)
    report["search"]["points"] = [p for p in report["search"]["points"] if p["state"] == "failed"]

    assert search_plot(report) is None
    assert "No trial was chosen." in md_section(render_markdown(report), "Search")


def test_markdown_lists_the_pareto_points_marks_the_chosen_one_and_the_failed_trials():
    markdown = render_markdown(make_report())

    search = md_section(markdown, "Search")
    assert markdown.index("## Artifacts") < markdown.index("## Search") < markdown.index("## Stages")
    assert ("6 trials: 5 completed, 1 failed; 2 worker(s), sampler nsga2, seed 0, 312.4 s wall time, "
            "20 stage step(s) trained, 41 reused from the cache.") in search
    assert "Chosen: trial 7, selected by size; it meets every gate." in search
    rows = [line for line in search.splitlines() if line.startswith("| ") and not line.startswith("| trial")]
    assert [row.split(" | ")[0] for row in rows] == ["| 2", "| **7** (chosen)", "| 4", "| 6"]  # smallest first
    assert ("| **7** (chosen) | stages.0.distill.student.width=0.5, stages.2.quantize.precision=int8 | 46,336 | "
            "0.0024 | 97.22% | yes |") in rows
    assert f"- trial 9: {ERROR}" in search


def test_a_chosen_trial_that_meets_no_gate_is_said_plainly():
    report = make_report(feasible=False, chosen=5)

    search = md_section(render_markdown(report), "Search")
    assert "Chosen: trial 5, the closest by gate margins; it does not meet every gate (no trial did)." in search
    assert "| **5** (chosen, not a Pareto point) |" in search
    assert "it does not meet every gate" in html_section(render_html(report), "search")


def test_html_has_the_search_section_its_nav_entry_and_the_plot():
    html = render_html(make_report())

    search = html_section(html, "search")
    assert '<a href="#search">Search</a>' in html
    assert "6 trials: 5 completed, 1 failed" in search
    table = re.search(r'<table id="pareto-table">.*?</table>', search, re.S).group(0)
    trials = re.findall(r"<tr><td>(?:<strong>)?(\d+)", table)
    assert trials == ["2", "7", "4", "6"]
    chosen = next(row for row in table.split("<tr>") if row.startswith("<td><strong>7</strong>"))
    assert 'class="pill pass">chosen</span>' in chosen and "<li>stages.0.distill.student.width: 0.5</li>" in chosen
    assert f'<li id="failed-trial-9">trial 9: {ERROR}</li>' in search
    assert '<figure class="card" id="plot-search-pareto" style="grid-column:1/-1"><svg' in html


def test_an_error_message_is_escaped_in_the_page():
    report = make_report()
    report["search"]["points"][-1]["error"] = "bad <script>alert(1)</script> & more"

    html = render_html(report)

    assert "bad &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html_section(html, "search")
    assert "<script" not in html


def test_a_regression_search_shows_mae():
    report = make_report()
    report["metric"], report["task"] = "mae", "regression"
    for p in report["search"]["points"]:
        p["mae"], p["accuracy"] = (None, None) if p["state"] == "failed" else (round(1 - p["accuracy"], 4), None)

    search = md_section(render_markdown(report), "Search")
    assert "| trial | params | bytes | p50 ms | MAE | meets every gate |" in search
    assert "| 46,336 | 0.0024 | 0.0278 | yes |" in search
    assert "MAE, validation (lower is better)" in search_plot(report).svg


def test_a_report_without_search_has_no_search_section_or_plot():
    for report in (copy.deepcopy(RUN), {**copy.deepcopy(RUN), "search": None}):
        html, markdown = render_html(report), render_markdown(report)

        assert search_plot(report) is None
        assert "## Search" not in markdown and "Pareto" not in markdown
        assert 'id="search"' not in html and 'href="#search"' not in html and "plot-search-pareto" not in html


def test_rendering_leaves_the_report_unchanged():
    report = make_report()
    before = json.dumps(report, sort_keys=True)

    assert render_html(report) == render_html(report) and render_markdown(report) == render_markdown(report)
    assert json.dumps(report, sort_keys=True) == before
