"""`edgekit compress` on an image folder: the folder is decoded once into the data cache, training,
calibration and evaluation stream it, and the int8 file is measured on every test image."""

from __future__ import annotations

import pytest

from tests.helpers import artifact_of, pattern_image_folder, read_report, run_edgekit

pytestmark = pytest.mark.slow

RECIPE = """\
version: 1
name: image-folder-stream
seed: 0
data:
  source: image_folder
  path: imgs
  image_size: [16, 16]
  scale: 0.00392156862745098
  validation_split: 0.1
  calibration_samples: 64
teacher:
  build: {arch: cnn_tiny, width: 1.0}
  framework: torch
  train: {epochs: 3, batch_size: 32, learning_rate: 0.01}
stages:
  - quantize: {method: ptq, precision: int8}
export:
  formats: [onnx]
evaluate:
  runtimes: [onnxruntime]
  latency: {warmup: 1, runs: 3, threads: 1, batch: 1}
"""


def test_compress_streams_an_image_folder(tmp_path):
    pattern_image_folder(tmp_path / "imgs", 400)
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    result = run_edgekit("compress", "recipe.yaml", "--output", "run", "-q", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    report = read_report(tmp_path / "run")
    final, teacher = artifact_of(report, "model.onnx"), artifact_of(report, "teacher")
    assert final["precision"] == "int8" and final["accuracy"] >= 0.7
    assert teacher["accuracy"] - final["accuracy"] <= 0.05
    assert "image folder" in report["data"]["description"] and report["data"]["test"] == 80
