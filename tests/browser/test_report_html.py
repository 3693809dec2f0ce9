"""report.html in a real browser: headless Chromium renders it with its plots and no console error.

The page is made by `render_html` from tests/browser/data/report.json (a copy of a real run's
report: Keras-free, PyTorch teacher, LiteRT and ONNX Runtime artifacts, 50% sparse final files);
report_search.json is the same run as the chosen trial of an `edgekit search`, with its `search` section.
Skipped when no Chromium binary is installed, except under CI=true, where .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from edgekit.report.html import render_html
from edgekit.report.plots import report_plots

FIXTURE = Path(__file__).parent / "data" / "report.json"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no chromium binary on PATH: .ci/run should have installed it")
        pytest.skip("no chromium binary on PATH (apt-get install -y chromium)")
    return binary


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(json.loads(FIXTURE.read_text(encoding="utf-8"))), encoding="utf-8")
    return path


def run_chromium(binary: str, page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run with its own profile, logging the page's console to stderr."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    command = [binary, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args,
               page.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def console_errors(stderr: str, page: Path) -> list[str]:
    """Console lines from the page: uncaught exceptions, console errors, any message the page logged."""
    return [line for line in stderr.splitlines()
            if "Uncaught" in line or "ERROR:CONSOLE" in line or (":CONSOLE" in line and page.as_uri() in line)]


def test_the_page_renders_its_banner_tables_and_plots_without_console_errors(chromium, page, tmp_path):
    result = run_chromium(chromium, page, tmp_path, "--dump-dom")

    dom = result.stdout
    assert re.search(r'<section class="banner pass"[^>]*>\s*<p class="verdict">PASS', dom)
    artifacts = re.search(r'<section id="artifacts".*?</section>', dom, re.S).group(0)
    for name in ("teacher", "baseline.tflite", "baseline.onnx", "model.tflite", "model.onnx"):
        assert f"<strong>{name}</strong>" in artifacts
    assert len(re.findall(r"<svg\b", dom)) >= 3
    assert console_errors(result.stderr, page) == []


def test_the_screenshot_is_a_real_picture(chromium, page, tmp_path):
    png = tmp_path / "report.png"

    run_chromium(chromium, page, tmp_path, f"--screenshot={png}", "--window-size=1280,2000")

    assert png.stat().st_size > 20_000
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 2000)
    colors = image.getcolors(maxcolors=1_000_000)
    assert len(colors) > 200, f"only {len(colors)} distinct colours: a blank or broken page"
    assert max(count for count, _ in colors) < 0.95 * image.width * image.height


def test_the_console_check_catches_a_page_error(chromium, tmp_path):
    # the control: the same detector reports an uncaught exception from a broken page
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html lang="en"><title>x</title><script>notDefined();</script></html>')

    result = run_chromium(chromium, broken, tmp_path, "--dump-dom")

    assert any("Uncaught ReferenceError" in line for line in console_errors(result.stderr, broken))


ANALYSIS = Path(__file__).parent / "data" / "analysis_report.json"


def test_an_analysis_page_shows_the_ranking_and_its_plot(chromium, tmp_path):
    """`edgekit analyze`'s report.html (tests/browser/data/analysis_report.json, from a real run on a
    digits CNN whose conv2d has one channel scaled x300): the ranking table with the rescaled layers
    first, the per-layer plot, no console error, and a screenshot that is a real picture."""
    page = tmp_path / "analysis.html"
    page.write_text(render_html(json.loads(ANALYSIS.read_text(encoding="utf-8"))), encoding="utf-8")

    dom = run_chromium(chromium, page, tmp_path, "--dump-dom")
    table = re.search(r'<table id="sensitivity-table">.*?</table>', dom.stdout, re.S).group(0)
    layers = re.findall(r"<tr><td><strong>([^<]+)</strong>", table)
    assert set(layers[:2]) == {"conv2d", "conv2d_1"} and len(layers) == 4
    plot = re.search(r'<figure class="card" id="plot-sensitivity">.*?</figure>', dom.stdout, re.S).group(0)
    assert "<svg" in plot and "conv2d_1" in plot
    assert console_errors(dom.stderr, page) == []

    png = tmp_path / "analysis.png"
    run_chromium(chromium, page, tmp_path, f"--screenshot={png}", "--window-size=1280,1600")
    colors = Image.open(png).convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colors) > 200, f"only {len(colors)} distinct colours: a blank or broken page"


SEARCH = Path(__file__).parent / "data" / "report_search.json"
# the Pareto plot's colours (edgekit.report.plots): feasible trials, Pareto points, the chosen trial's star
SEARCH_COLORS = {"feasible": (0x09, 0x69, 0xDA), "pareto": (0xE3, 0x62, 0x09), "chosen": (0xD4, 0xA7, 0x2C)}


def test_a_search_page_shows_its_pareto_table_failed_trial_and_plot(chromium, tmp_path):
    """The chosen run of a 16-trial search (tests/browser/data/report_search.json: trial 7 chosen, trial 3
    failed): the Search section with the Pareto points smallest first, the failed trial, and the Pareto
    plot first in the plots, across the whole row, with no console error."""
    page = tmp_path / "search.html"
    page.write_text(render_html(json.loads(SEARCH.read_text(encoding="utf-8"))), encoding="utf-8")

    dom = run_chromium(chromium, page, tmp_path, "--dump-dom")

    assert '<a href="#search">Search</a>' in dom.stdout
    search = re.search(r'<section id="search".*?</section>', dom.stdout, re.S).group(0)
    table = re.search(r'<table id="pareto-table">.*?</table>', search, re.S).group(0)
    assert re.findall(r"<tr><td>(?:<strong>)?(\d+)", table) == ["2", "8", "0", "7", "4", "6"]
    assert '<strong>7</strong> <span class="pill pass">chosen</span>' in table
    assert re.search(r'<li id="failed-trial-3">trial 3: stages\[1\]\.prune: ', search)
    plot = re.search(r'<div class="plots">\s*<figure class="card" id="plot-search-pareto" '
                     r'style="grid-column:1/-1">(.*?)</figure>', dom.stdout, re.S)
    assert plot and "<svg" in plot.group(1) and "chosen (trial 7)" in plot.group(1)
    assert console_errors(dom.stderr, page) == []


def test_the_pareto_plot_draws_its_markers(chromium, tmp_path):
    """The Pareto plot's SVG alone, screenshot: the feasible trials, the Pareto points and the chosen
    trial's star are there in their colours (a plot that failed to render has none of them)."""
    plot = next(p for p in report_plots(json.loads(SEARCH.read_text(encoding="utf-8"))) if p.key == "search-pareto")
    page = tmp_path / "pareto.html"
    page.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Pareto plot</title>'
                    "<style>body{margin:0;background:#fff}svg{width:100%;height:auto;display:block}</style>"
                    f"</head><body>{plot.svg}</body></html>", encoding="utf-8")
    png = tmp_path / "pareto.png"

    run_chromium(chromium, page, tmp_path, f"--screenshot={png}", "--window-size=1200,600")

    colors = Image.open(png).convert("RGB").getcolors(maxcolors=1_000_000)
    for name, target in SEARCH_COLORS.items():
        pixels = sum(count for count, rgb in colors if max(abs(a - b) for a, b in zip(rgb, target)) <= 24)
        assert pixels >= 30, f"{pixels} pixels of the {name} colour {target}: the plot did not render"
