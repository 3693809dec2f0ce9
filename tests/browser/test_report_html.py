"""report.html in a real browser: headless Chromium renders it with its plots and no console error.

The page is made by `render_html` from tests/browser/data/report.json (a copy of a real run's
report: Keras-free, PyTorch teacher, LiteRT and ONNX Runtime artifacts, 50% sparse final files).
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
