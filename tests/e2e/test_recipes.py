"""Every example recipe, the other quantization settings, a SavedModel teacher, a regression task
and the real third-party wake-word model, each run end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import ROOT, artifact_of, read_report, run_edgekit, shared_model

pytestmark = pytest.mark.slow

# digits_search.yaml is searched, not compressed: tests/e2e/test_search.py runs it
EXAMPLES = sorted(p.name for p in (ROOT / "recipes").glob("*.yaml") if p.name not in ("quickstart.yaml",
                                                                                        "digits_search.yaml"))


@pytest.mark.parametrize("recipe", EXAMPLES)
def test_example_recipe_runs_and_passes_its_gates(recipe, example_run):
    if recipe == "tiny_sww.yaml":
        shared_model("tiny_sww/str_ww_ref_model.h5")
    out, result = example_run(recipe)
    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)
    assert report["passed"] and report["gates"], "example recipes set gates, and they pass"
    finals = [a for a in report["artifacts"] if a["role"] == "final"]
    assert finals and all(a["accuracy"] is not None and a["bytes"] > 0 for a in finals)


def test_tiny_sww_h5_from_keras_2_quantizes_like_the_reference(example_run):
    reference = shared_model("tiny_sww/str_ww_ref_model.tflite")
    out, result = example_run("tiny_sww.yaml")
    assert result.returncode == 0, result.stderr
    model = artifact_of(read_report(out), "model.tflite")
    assert model["bytes"] <= 80_000 and model["bytes"] == (out / "model.tflite").stat().st_size
    assert model["bytes"] <= 1.05 * reference.stat().st_size
    assert model["accuracy"] >= 0.86
    assert model["io"]["inputs"][0]["dtype"] == "int8" and model["io"]["inputs"][0]["shape"][1:] == [30, 1, 40]


@pytest.mark.parametrize(
    "precision, io, per_channel, tflite_input",
    [("dynamic", "float32", True, "float32"), ("float16", "float32", True, "float32"),
     ("int8", "uint8", True, "uint8"), ("int8", "float32", False, "float32")],
)
def test_quantization_settings(precision, io, per_channel, tflite_input, tmp_path):
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", f"stages.0.quantize.precision={precision}", "--set", f"stages.0.quantize.io={io}",
                         "--set", f"stages.0.quantize.per_channel={str(per_channel).lower()}",
                         "--set", "gates={}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    teacher, tflite, onnx = (artifact_of(report, n) for n in ("teacher", "model.tflite", "model.onnx"))
    baseline = artifact_of(report, "baseline.tflite")
    assert tflite["precision"] == precision and tflite["io"]["inputs"][0]["dtype"] == tflite_input
    assert teacher["accuracy"] - tflite["accuracy"] <= 0.02
    assert teacher["accuracy"] - onnx["accuracy"] <= 0.02
    expected_ratio = {"float16": 0.55, "dynamic": 0.30, "int8": 0.30}[precision]
    assert tflite["bytes"] <= expected_ratio * baseline["bytes"]
    assert onnx["bytes"] < artifact_of(report, "baseline.onnx")["bytes"]


def test_savedmodel_directory_teacher(tmp_path):
    from edgekit.backends import get_backend

    keras = get_backend("keras")
    saved = tmp_path / "digits_savedmodel"
    keras.load(ROOT / "sample_models" / "digits_cnn.keras").save(str(saved))
    assert (saved / "saved_model.pb").exists()
    out = tmp_path / "run"
    result = run_edgekit("compress", "recipes/quickstart.yaml", "--output", str(out), "-q",
                         "--set", f"teacher.path={saved}")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["stages"][0]["config"]["path"] == str(saved)
    assert artifact_of(report, "model.tflite")["accuracy"] >= 0.95


def test_regression_task_reports_mae_and_gates_on_its_increase(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 2 * np.pi, size=(1200, 1)).astype(np.float32)
    y = np.sin(x[:, 0]).astype(np.float32)
    np.savez(tmp_path / "sine.npz", x_train=x[:1000], y_train=y[:1000], x_test=x[1000:], y_test=y[1000:])
    recipe = tmp_path / "sine.yaml"
    recipe.write_text(
        "version: 1\nname: sine\ntask: regression\n"
        "data: {source: npz, path: sine.npz, scale: 0.3183, offset: -1.0, calibration_samples: 200}\n"
        "teacher: {build: {arch: mlp, width: 0.5}, train: {epochs: 40, batch_size: 32, learning_rate: 0.01}}\n"
        "stages: [{quantize: {precision: int8, io: int8}}]\n"
        "gates: {max_accuracy_drop: 0.05}\n"
    )
    out = tmp_path / "run"
    result = run_edgekit("compress", str(recipe), "--output", str(out), "-q")
    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)
    assert report["metric"] == "mae"
    teacher, tflite = artifact_of(report, "teacher"), artifact_of(report, "model.tflite")
    assert teacher["mae"] < 0.1 and tflite["mae"] < 0.1
    gate = next(g for g in report["gates"] if g["artifact"] == "model.tflite")
    assert gate["unit"] == "mae" and gate["value"] == pytest.approx(tflite["mae"] - teacher["mae"], abs=1e-5)
    assert not (out / "labels.txt").exists()


def test_compression_benchmark_smoke(tmp_path):
    """The benchmark script still runs and writes its table (a reduced run: one recipe)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compression.py"), "--recipes", "quickstart",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "compression.json").read_text())["rows"]
    assert rows[0]["recipe"] == "quickstart" and rows[0]["raw_ratio"] < 0.3
    assert "| quickstart |" in proc.stdout


@pytest.mark.parametrize("framework", ["keras", "torch"])
def test_init_writes_a_recipe_that_validates_and_runs(framework, tmp_path):
    recipe = tmp_path / f"{framework}.yaml"
    assert run_edgekit("init", "--framework", framework, "--output", str(recipe)).returncode == 0
    assert run_edgekit("validate", str(recipe)).returncode == 0
    out = tmp_path / "run"
    result = run_edgekit("compress", str(recipe), "--output", str(out), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_report(out)["framework"] == framework


def test_validate_deep_checks_that_the_data_fit_the_teacher(tmp_path):
    np.savez(tmp_path / "nine.npz", x_train=np.zeros((40, 9, 9, 1), np.float32), y_train=np.arange(40) % 10,
             x_test=np.zeros((10, 9, 9, 1), np.float32), y_test=np.arange(10))
    args = ("validate", "recipes/quickstart.yaml", "--set", f"data={{source: npz, path: {tmp_path / 'nine.npz'}, "
            "calibration_samples: 8}")
    assert run_edgekit(*args).returncode == 0  # the fast check reads neither data nor model
    deep = run_edgekit(*args, "--deep")
    assert deep.returncode == 2
    assert "expects samples of shape [8, 8, 1]" in deep.stderr and "[9, 9, 1]" in deep.stderr
    assert run_edgekit("validate", "recipes/digits_full.yaml", "--deep").returncode == 0
