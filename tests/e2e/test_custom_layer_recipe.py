"""A Keras teacher with a custom self-attention layer, through the CLI: validate names the keys it
needs, and `compress` with `custom_objects` + `trust_code` quantizes it to both formats."""

from __future__ import annotations

import numpy as np
import pytest

from tests.custom_layers import write_models
from tests.helpers import artifact_of, band_dataset, compressed_report, run_edgekit

pytestmark = pytest.mark.slow


def test_a_custom_layer_teacher_compresses_to_int8_tflite_and_onnx(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    data = band_dataset(n=600, shape=(8, 8, 1), classes=4, validation=0.0)
    np.savez(models / "data.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test,
             y_test=data.y_test)
    attention, _ = write_models(models, "e2e", classes=4, train_epochs=8)
    recipe = tmp_path / "custom.yaml"
    body = ("version: 1\nname: custom\n"
            "data: {source: npz, path: models/data.npz, calibration_samples: 64}\n"
            "teacher: {path: models/attention.keras, custom_objects: %s%s}\n"
            "stages: [{quantize: {method: ptq, precision: int8}}]\n"
            "evaluate: {latency: {warmup: 1, runs: 5}}\n")

    recipe.write_text(body % (attention, ""))
    untrusted = run_edgekit("validate", str(recipe))
    assert untrusted.returncode == 2
    assert "line 4, teacher.custom_objects" in untrusted.stderr and "teacher.trust_code: true" in untrusted.stderr

    recipe.write_text(body % (attention, ", trust_code: true"))
    report, teacher = compressed_report(recipe, tmp_path / "run")
    assert teacher["accuracy"] >= 0.9
    for name in ("model.tflite", "model.onnx"):
        final = artifact_of(report, name)
        assert final["bytes"] > 0 and final["accuracy"] >= teacher["accuracy"] - 0.1, final
        assert final["latency_ms"]["p50"] > 0
