"""edgekit.report.html: report.json -> one self-contained report.html, a pure function of a hand-made dict.

No framework or runtime is imported here: the page is drawn from numbers already in the report.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from edgekit.report import SCHEMA, load_report, write_report
from edgekit.report.html import render_html

REPO = Path(__file__).resolve().parents[2]
ARTIFACT_NAMES = ["teacher", "baseline.tflite", "baseline.onnx", "model.tflite", "model.onnx"]
LATENCY = {"p50": 0.42, "p90": 0.5, "p99": 0.61, "warmup": 10, "runs": 100, "threads": 1, "batch": 1}


def layers(sparsity: float) -> list[dict]:
    return [{"name": f"net/{name}/MatMul;net/{name}/FakeQuant", "shape": [16, 32], "elements": 512,
             "zeros": int(512 * sparsity), "sparsity": sparsity, "encoding": "dense"} for name in ("dense", "logits")]


def make_report(metric: str = "accuracy", sparsity: float = 0.75, passed: bool = False) -> dict:
    """A classification (or, with metric='mae', regression) run: distill + prune + quantize, both runtimes."""
    q = "accuracy" if metric == "accuracy" else "mae"
    value = (lambda acc: acc) if q == "accuracy" else (lambda acc: round(1 - acc, 4))
    artifacts = [
        {"name": "teacher", "role": "teacher", "format": "keras", "runtime": "keras", "precision": "float32",
         "params": 150_000, "bytes": None, "gzip_bytes": None, "latency_ms": None, q: value(0.97), "agreement": 1.0},
        {"name": "baseline.tflite", "role": "baseline", "format": "tflite", "runtime": "litert", "precision": "float32",
         "bytes": 600_000, "gzip_bytes": 550_000, q: value(0.97), "agreement": 1.0, "latency_ms": LATENCY,
         "weight_sparsity": 0.0, "layers": layers(0.0)},
        {"name": "baseline.onnx", "role": "baseline", "format": "onnx", "runtime": "onnxruntime",
         "precision": "float32", "bytes": 610_000, "gzip_bytes": 551_000, q: value(0.97), "agreement": 1.0,
         "latency_ms": {**LATENCY, "p50": 0.6, "p90": 0.7}},
        {"name": "model.tflite", "role": "final", "format": "tflite", "runtime": "litert", "precision": "int8",
         "bytes": 30_000, "gzip_bytes": 12_000, q: value(0.965), "agreement": 0.99,
         "latency_ms": {**LATENCY, "p50": 0.05, "p90": 0.06}, "weight_sparsity": sparsity, "layers": layers(sparsity)},
        {"name": "model.onnx", "role": "final", "format": "onnx", "runtime": "onnxruntime", "precision": "int8",
         "bytes": 40_000, "gzip_bytes": 15_000, q: value(0.96), "agreement": 0.985,
         "latency_ms": {**LATENCY, "p50": 0.2, "p90": 0.25}, "weight_sparsity": sparsity, "layers": layers(sparsity)},
    ]
    gates = [{"gate": "max_size", "artifact": "model.tflite", "limit": 64_000, "value": 30_000, "unit": "bytes",
              "passed": True}]
    if not passed:
        gates.append({"gate": "min_accuracy", "artifact": "model.onnx", "limit": 0.97, "value": 0.96,
                      "unit": "accuracy", "passed": False})
    stages = [
        {"name": "teacher", "summary": "loaded digits_cnn.keras", "wall_s": 0.3, "metrics": {"params": 150_000}},
        {"name": "distill", "summary": "student cnn_small (width 0.4)", "wall_s": 5.2,
         "metrics": {"params": 25_000, q: value(0.975)},
         "details": {"student_params": 25_000, "final_epoch": {"loss": 0.06, "val_accuracy": 0.98}}},
        {"name": "prune", "summary": "unstructured to 0.75", "wall_s": 3.4, "metrics": {"params": 25_000, q: value(0.97)},
         "details": {"target_sparsity": 0.75, "pruned_layers": ["dense", "logits"], "left_dense": []}},
        {"name": "quantize", "summary": "qat int8", "wall_s": 2.5, "metrics": {}, "details": {"scheme": "PQAT"}},
        {"name": "export model.tflite", "summary": "int8, tflite", "wall_s": 3.2, "metrics": {"bytes": 30_000}},
    ]
    return {
        "schema": SCHEMA, "edgekit_version": "0.1.0", "name": "digits-html", "created": "2025-01-01T00:00:00+00:00",
        "task": "classification" if q == "accuracy" else "regression", "metric": metric,
        "environment": {"platform": "Linux-x86_64", "cpu": "test cpu", "cores": 4, "python": "3.11.9",
                        "packages": {"numpy": "1.26.4", "onnxruntime": "1.20.0"}},
        "data": {"description": "digits", "train": 1293, "validation": 144, "test": 360, "calibration": 256,
                 "input_shape": [8, 8, 1], "num_classes": 10},
        "stages": stages, "artifacts": artifacts, "gates": gates,
        "warnings": ["model.tflite: written dense <because> the sparse file did not load & fell back"],
        "exit_code": 0 if passed else 1, "passed": passed,
    }


def banner(html: str) -> str:
    match = re.search(r'<section class="banner (pass|fail)".*?</section>', html, re.S)
    assert match, "no verdict banner"
    return match.group(0)


def section(html: str, key: str) -> str:
    match = re.search(rf'<section id="{key}".*?</section>', html, re.S)
    assert match, f"no section {key}"
    return match.group(0)


def test_a_failed_gate_gives_a_red_fail_banner_naming_the_gate_and_exit_code():
    html = render_html(make_report(passed=False))

    verdict = banner(html)
    assert verdict.startswith('<section class="banner fail"')
    assert "FAIL: 1 of 2 gate(s) failed (exit code 1)" in verdict
    failing_row = next(row for row in verdict.split("<tr>") if "min_accuracy" in row)
    assert "model.onnx" in failing_row and 'class="pill fail">FAIL' in failing_row
    assert "max_size" in verdict


def test_the_stages_section_says_where_training_ran():
    report = {**make_report(), "compute": {"device": "cuda:0", "precision": "mixed", "compute_dtype": "float16"}}
    assert "Training ran on the GPU cuda:0 in mixed precision (float16 compute, float32 weights)" in render_html(report)


def test_a_passing_run_gives_a_green_pass_banner():
    html = render_html(make_report(passed=True))

    verdict = banner(html)
    assert verdict.startswith('<section class="banner pass"')
    assert "PASS: every gate passed (exit code 0)" in verdict
    assert "pill fail" not in verdict


def test_every_artifact_has_a_row_with_its_runtime_and_latency():
    html = render_html(make_report())

    table = section(html, "artifacts")
    for name in ARTIFACT_NAMES:
        assert f"<strong>{name}</strong>" in table
    assert "<th scope=\"col\">accuracy</th>" in table and "<th scope=\"col\">p90 ms</th>" in table
    assert "96.50%" in table and "onnxruntime" in table and "0.06" in table


def test_four_plots_when_the_final_files_are_sparse():
    html = render_html(make_report(sparsity=0.75))

    assert html.count("<svg") == 4
    for key in ("quality-size", "latency", "sparsity", "wall-time"):
        assert f'id="plot-{key}"' in html


def test_the_sparsity_plot_is_left_out_when_no_layer_is_sparse():
    html = render_html(make_report(sparsity=0.01))

    assert html.count("<svg") == 3
    assert "plot-sparsity" not in html


def test_a_regression_report_shows_mae_and_three_plots():
    html = render_html(make_report(metric="mae", sparsity=0.0))

    table = section(html, "artifacts")
    assert '<th scope="col">MAE</th>' in table
    assert "0.035" in table  # model.tflite's MAE, a number rather than a percentage
    assert html.count("<svg") == 3  # quality, latency, wall time: these layers are dense
    assert "MAE (lower is better)" in html


def test_the_page_references_nothing_outside_itself():
    html = render_html(make_report())

    links = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', html)
    assert links and all(link.startswith("#") for link in links), links
    without_namespaces = re.sub(r'\sxmlns(?::\w+)?="[^"]*"', "", html)
    assert "http://" not in without_namespaces and "https://" not in without_namespaces
    assert "<script" not in html and "<link" not in html and "@import" not in html and "url(http" not in html


def test_text_is_escaped_and_the_basics_of_accessibility_are_there():
    html = render_html(make_report())

    assert "written dense &lt;because&gt; the sparse file did not load &amp; fell back" in html
    assert "<because>" not in html
    assert html.startswith("<!DOCTYPE html>") and '<html lang="en">' in html
    assert "<title>edgekit report: digits-html</title>" in html
    svgs = re.findall(r"<svg\b[^>]*>\s*<title[^>]*>[^<]+</title>", html)
    assert len(svgs) == html.count("<svg") and all('role="img"' in svg for svg in svgs)


def test_stage_table_shows_details_metrics_and_wall_time():
    html = render_html(make_report())

    stages = section(html, "stages")
    assert "pruned layers: dense, logits" in stages
    assert "final epoch: loss 0.06, val_accuracy 0.98" in stages
    assert "5.20 s" in stages and "params 25,000, accuracy 0.975" in stages
    assert "1.26.4" in section(html, "environment") and "1293 / 144 / 360" in section(html, "data")


def test_rendering_is_a_pure_function_of_the_report():
    report = make_report()
    before = json.dumps(report, sort_keys=True)

    assert render_html(report) == render_html(report)
    assert json.dumps(report, sort_keys=True) == before


def test_write_report_writes_report_html_beside_json_and_markdown(tmp_path):
    report = make_report()

    write_report(tmp_path, report)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json", "report.md"]
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == render_html(load_report(tmp_path))


def test_importing_the_report_modules_does_not_import_matplotlib():
    code = "import sys, edgekit.report, edgekit.report.html; print('matplotlib' in sys.modules)"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
