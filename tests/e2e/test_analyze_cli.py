"""`edgekit analyze` through the CLI, on a Keras teacher file with an outlier channel (issue 12,
point 1): it ranks the rescaled layers first, spots the outlier channel and writes the ranking into
report.json / .md / .html; a recipe without a post-training quantize stage is refused with exit
code 2. (`max_drop` on the same kind of model: tests/contract/test_accuracy_control.py, both
frameworks; how report.md shows its search: tests/unit/test_report_analysis.py.)"""

from __future__ import annotations

import json

import pytest

from tests.helpers import digits_dataset, read_report, rescale_outlier_channel, run_edgekit, trained_artifact

pytestmark = pytest.mark.slow

RECIPE = """version: 1
name: outlier
data: {{source: digits, scale: 0.0625, calibration_samples: 256}}
teacher: {{path: {teacher}}}
stages:
  - quantize: {{method: ptq, precision: int8}}
export: {{formats: [tflite, onnx]}}
evaluate: {{runtimes: [litert, onnxruntime], latency: {{warmup: 5, runs: 50}}}}
"""


@pytest.fixture(scope="module")
def outlier(tmp_path_factory):
    """(a digits CNN saved as a Keras file whose first conv has its most active channel scaled x300,
    the names of its first two layers, as Keras named them in this process)."""
    from edgekit.backends import get_backend

    data = digits_dataset(calibration_samples=256)
    model = trained_artifact("keras", data, epochs=3, outputs=10).model
    first, second = get_backend("keras").weight_layers(model)[:2]
    rescale_outlier_channel("keras", model, first, second, data)
    path = tmp_path_factory.mktemp("outlier") / "outlier.keras"
    model.save(path)
    return path, (first, second)


@pytest.fixture(scope="module")
def teacher(outlier):
    return outlier[0]


def _recipe(tmp_path, teacher):
    path = tmp_path / "outlier.yaml"
    path.write_text(RECIPE.format(teacher=teacher))
    return path


def test_analyze_ranks_the_rescaled_layers_first(outlier, tmp_path):
    teacher, (first, second) = outlier
    out = tmp_path / "analysis"
    result = run_edgekit("analyze", str(_recipe(tmp_path, teacher)), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr + result.stdout

    section = json.loads(result.stdout)
    ranked = section["layers"]
    assert {row["layer"] for row in ranked[:2]} == {first, second}
    assert ranked[0]["quantized_alone"]["tflite"] > 0.05 and ranked[0]["quantized_alone"]["onnx"] > 0.05
    rescaled = next(row for row in ranked if row["layer"] == first)
    assert rescaled["channel_ratio"] > 100 and all(row["channel_ratio"] < 50 for row in ranked if row is not rescaled)
    assert set(section["tools"]) == {"tflite", "onnx"} and all(row["snr_db"] for row in ranked[:2])
    report = read_report(out)
    assert report["analysis"] == section and report["artifacts"] == []
    assert "## Quantization sensitivity" in (out / "report.md").read_text()
    assert 'id="plot-sensitivity"' in (out / "report.html").read_text()


def test_analyze_needs_a_post_training_quantize_stage(teacher, tmp_path):
    recipe = _recipe(tmp_path, teacher)
    recipe.write_text(recipe.read_text().replace("method: ptq, precision: int8", "method: ptq, precision: dynamic"))
    result = run_edgekit("analyze", str(recipe), "-o", str(tmp_path / "no"))
    assert result.returncode == 2, result.stderr + result.stdout
    assert "outlier.yaml" in result.stderr and "edgekit analyze studies a post-training int8" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "no").exists()
