"""The training recipes on a GPU in mixed precision (float16 with loss scaling), end to end: the
report says where training ran, the exported files are float32 / int8 as on the CPU and as good.
Skipped where the framework sees no CUDA device (this CPU-only CI); run with `-m gpu` on a GPU box."""

from __future__ import annotations

import pytest

from tests.helpers import artifact_of, read_report, run_edgekit

pytestmark = [pytest.mark.slow, pytest.mark.gpu]

RECIPE = "recipes/digits_torch_qat.yaml"
TEACHERS = {"torch": "sample_models/digits_cnn_torch.pt2", "keras": "sample_models/digits_cnn.keras"}
# Keras QAT cannot train in mixed precision (TF-MOT's fake-quant ops take float32): PTQ there
KERAS_STAGES = "stages=[{distill: {student: {arch: cnn_small, width: 0.5}, epochs: 20}}, {prune: {sparsity: 0.5, epochs: 3}}, {quantize: {method: ptq, precision: int8}}]"


def _cuda_devices(framework: str) -> int:
    if framework == "torch":
        torch = pytest.importorskip("torch")
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    from edgekit.backends import get_backend

    return get_backend("keras").gpus()


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_recipe_trains_on_the_gpu_in_mixed_precision(framework, tmp_path):
    if not _cuda_devices(framework):
        pytest.skip(f"{framework} sees no CUDA device here")
    extra = ("--set", KERAS_STAGES) if framework == "keras" else ()
    on_cpu, on_gpu = tmp_path / "cpu", tmp_path / "gpu"
    for out, device, precision in ((on_cpu, "cpu", "float32"), (on_gpu, "cuda", "mixed")):
        result = run_edgekit("compress", RECIPE, "--output", str(out), "-q", "--no-cache", "--set",
                             f"teacher.path={TEACHERS[framework]}", *extra, "--device", device, "--precision", precision)
        assert result.returncode == 0, result.stderr
    report = read_report(on_gpu)
    assert report["compute"]["device"] == "cuda:0" and report["compute"]["compute_dtype"] == "float16"
    model = artifact_of(report, "model.onnx")
    assert model["precision"] == "int8"
    assert abs(model["accuracy"] - artifact_of(read_report(on_cpu), "model.onnx")["accuracy"]) <= 0.01
