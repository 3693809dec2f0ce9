"""Transfer learning as a recipe, through the CLI (issue 11, point 6): teacher.build with a
MobileNetV2 base whose "pretrained" weights the test saves itself (no network), head training on
the frozen base, a fine-tune, then PTQ int8 to .tflite and .onnx, both measured. Bad transfer
recipes exit 2 naming the key."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import artifact_of, colour_dataset, compressed_report, run_edgekit, stage_of

pytestmark = pytest.mark.slow


def write_data(path, n=240, side=32, seed=0):
    data = colour_dataset(n=n, side=side, seed=seed, validation=0.0)
    np.savez(path, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)


def write_recipe(path, build: str, train: str = "{epochs: 3, learning_rate: 0.01}", framework: str = "keras"):
    path.write_text("version: 1\nname: transfer\n"
                    "data: {source: npz, path: data.npz, calibration_samples: 32, validation_split: 0.1}\n"
                    f"teacher:\n  framework: {framework}\n  build: {build}\n  train: {train}\n"
                    "stages: [{quantize: {method: ptq, precision: int8}}]\n"
                    "evaluate: {latency: {warmup: 1, runs: 5}}\n")
    return path


def test_a_keras_transfer_recipe_trains_the_head_fine_tunes_and_exports_int8(tmp_path):
    from tests.helpers import save_pretrained_mobilenet_v2

    write_data(tmp_path / "data.npz")
    save_pretrained_mobilenet_v2(tmp_path / "base_no_top.h5", 0.35, data=colour_dataset(n=180, seed=5))
    recipe = write_recipe(tmp_path / "transfer.yaml",
                          "{arch: mobilenet_v2, width: 0.35, weights: base_no_top.h5, freeze: base, "
                          "head: {dropout: 0.2}}",
                          "{epochs: 3, learning_rate: 0.01, fine_tune: {epochs: 1, learning_rate: 0.0001}}")
    report, teacher = compressed_report(recipe, tmp_path / "run")
    step = stage_of(report, "teacher")
    assert "base_no_top.h5" in step["summary"] and "base frozen" in step["summary"]
    assert "fine-tuned" in step["summary"]
    assert step["details"]["head_only"]["accuracy"] > 0.5, step
    assert teacher["accuracy"] > 0.5, teacher
    for name in ("model.tflite", "model.onnx"):
        final = artifact_of(report, name)
        assert final["bytes"] > 0 and final["latency_ms"]["p50"] > 0, final
        assert final["accuracy"] >= teacher["accuracy"] - 0.1, final
    inspected = run_edgekit("inspect", str(tmp_path / "run" / "model.tflite"), "--json").json()
    assert "DEPTHWISE_CONV_2D" in inspected["ops"]


@pytest.mark.parametrize("build, data_side, key, words", [
    ("{arch: mobilenet_v2, width: 0.35, weights: missing.h5, freeze: base}", 32, "teacher.build.weights",
     "does not exist"),
    ("{arch: mobilenet_v2, width: 0.35, freeze: base}", 32, "teacher.build", "needs teacher.build.weights"),
    ("{arch: mobilenet_v2, width: 0.35}", 16, "teacher.build.arch", "at least 32x32"),
])
def test_bad_transfer_recipes_exit_2_naming_the_key(tmp_path, build, data_side, key, words):
    write_data(tmp_path / "data.npz", n=80, side=data_side)
    recipe = write_recipe(tmp_path / "bad.yaml", build)
    result = run_edgekit("validate", str(recipe), "--deep")
    assert result.returncode == 2, result.stdout + result.stderr
    assert key in result.stderr + result.stdout and words in result.stderr + result.stdout


def test_an_arch_torch_cannot_build_here_is_refused_at_validation(tmp_path):
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: torch builds resnet50")
    write_data(tmp_path / "data.npz", n=80)
    recipe = write_recipe(tmp_path / "resnet.yaml", "{arch: resnet50}", framework="torch")
    result = run_edgekit("validate", str(recipe))
    assert result.returncode == 2 and "teacher.build.arch" in result.stderr and "torchvision" in result.stderr


def test_a_torch_transfer_recipe_loads_a_torchvision_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    from edgekit.backends.torch import zoo

    write_data(tmp_path / "data.npz", n=120)
    torch.manual_seed(0)
    base = {k: v for k, v in zoo.build("mobilenet_v2", 0.35, (32, 32, 3), 1000).state_dict().items()
            if not k.startswith("classifier.")}
    torch.save(base, tmp_path / "mobilenet_v2_base.pth")
    recipe = write_recipe(tmp_path / "torch.yaml",
                          "{arch: mobilenet_v2, width: 0.35, weights: mobilenet_v2_base.pth, freeze: base}",
                          "{epochs: 1, fine_tune: {epochs: 1}}", framework="torch")
    report, teacher = compressed_report(recipe, tmp_path / "run")
    assert "fine-tuned" in stage_of(report, "teacher")["summary"]
    for name in ("model.tflite", "model.onnx"):
        final = artifact_of(report, name)
        assert final["bytes"] > 0 and final["latency_ms"]["p50"] > 0, final
