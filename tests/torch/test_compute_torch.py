"""Torch training on the run's compute (`train.computing`): under mixed precision the forward
passes compute in bfloat16 on the CPU (float16 with loss scaling on a GPU) while the weights, and
every model a stage hands on, stay float32 on the CPU; distillation, pruning and QAT all train so."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.compute import Compute  # noqa: E402
from edgekit.recipe import DistillConfig, PruneConfig, QuantizeConfig  # noqa: E402
from edgekit.stages import run_stage  # noqa: E402
from edgekit.backends.torch import BACKEND, qat, train  # noqa: E402
from tests.helpers import band_dataset, read_report, run_edgekit, stage_context, trained_artifact

MIXED = Compute(precision="mixed")
LAYERS = (torch.nn.Linear, torch.nn.Conv2d)


@contextlib.contextmanager
def layer_dtypes():
    """{"train": dtypes, "eval": dtypes} of the outputs of every Linear and Conv2d that runs in the
    block, split by the module's mode (training steps vs validation and predict)."""
    seen: dict[str, set] = {"train": set(), "eval": set()}

    def record(module, _inputs, output):
        if isinstance(module, LAYERS) and isinstance(output, torch.Tensor):
            seen["train" if module.training else "eval"].add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        yield seen
    finally:
        hook.remove()


@contextlib.contextmanager
def fake_quant_inputs():
    """The dtypes that arrive at fake-quant modules in the block, before any hook of theirs runs
    (global pre-hooks run first): what the layer before each computed in. Not for blocks that run
    torch.export, whose tracing a global hook breaks."""
    seen: set = set()
    types = qat._fake_quant_types()

    def record(module, args):
        if isinstance(module, types) and args and isinstance(args[0], torch.Tensor):
            seen.add(args[0].dtype)

    hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        yield seen
    finally:
        hook.remove()


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _unchanged(before: dict, model) -> bool:
    after = model.state_dict()
    return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def _float32_on_cpu(model) -> bool:
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    return bool(tensors) and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors)


def _accuracy(model, data) -> float:
    return float((BACKEND.predict(model, data.x_test).argmax(1) == data.y_test).mean())


@pytest.fixture(scope="module")
def teacher():
    data = band_dataset()
    return data, trained_artifact("torch", data, epochs=4)


@pytest.mark.parametrize("compute, dtype", [(MIXED, torch.bfloat16), (Compute(), torch.float32)])
def test_training_computes_in_the_compute_dtype_and_returns_float32_weights_on_the_cpu(compute, dtype):
    data = band_dataset(n=200)
    model = BACKEND.build("cnn_small", 0.25, data.input_shape, 4, "classification", seed=0)
    before = _state(model)
    with train.computing(compute), layer_dtypes() as seen:
        trained = train.fit(model, data, epochs=1, batch_size=32, learning_rate=0.003, seed=0)
    assert seen["train"] == {dtype}
    assert seen["eval"] == {torch.float32}  # validation stays float32
    assert _float32_on_cpu(trained) and not _unchanged(before, trained)
    assert _unchanged(before, model) and _float32_on_cpu(model)  # fit's input is untouched
    assert train.current() == Compute()  # the block ended: float32 on the CPU again


def test_mixed_precision_reaches_float32_accuracy_on_a_noisy_task():
    data = band_dataset(n=600, noise=1.2)  # noisy enough that neither reaches 100%
    accuracy, weights = {}, {}
    for compute in (Compute(), MIXED):
        model = BACKEND.build("cnn_small", 0.25, data.input_shape, 4, "classification", seed=0)
        with train.computing(compute):
            trained = train.fit(model, data, epochs=4, batch_size=32, learning_rate=0.003, seed=0)
        accuracy[compute.precision], weights[compute.precision] = _accuracy(trained, data), _state(trained)
    assert 0.85 <= accuracy["float32"] < 1.0
    assert accuracy["mixed"] == pytest.approx(accuracy["float32"], abs=0.02)
    assert any(not torch.equal(weights["float32"][k], weights["mixed"][k]) for k in weights["float32"])


def test_distillation_trains_student_and_teacher_forward_in_bfloat16(teacher):
    data, art = teacher
    before = _state(art.model)
    config = DistillConfig(student={"arch": "cnn_small", "width": 0.25}, epochs=3)
    with train.computing(MIXED), layer_dtypes() as seen:
        result = run_stage(art, config, stage_context(data, "torch"))
    assert seen["train"] == {torch.bfloat16}
    assert torch.bfloat16 in seen["eval"]  # the frozen teacher (eval mode) ran under autocast too
    assert _float32_on_cpu(result.model) and _unchanged(before, art.model)
    assert _accuracy(result.model, data) >= 0.9


@pytest.mark.parametrize("structure", ["unstructured", "2:4", "channels"])
def test_pruning_under_mixed_precision_keeps_its_sparsity_in_float32_weights(teacher, structure):
    data, art = teacher
    schedule = {"schedule": "constant"} if structure == "unstructured" else {}
    config = PruneConfig(structure=structure, sparsity=0.5, epochs=1, **schedule)
    with train.computing(MIXED), layer_dtypes() as seen:
        result = run_stage(art, config, stage_context(data, "torch"))
    assert seen["train"] == {torch.bfloat16}
    assert _float32_on_cpu(result.model)
    assert _accuracy(result.model, data) >= 0.9
    if structure != "channels":
        for name in result.details["pruned_layers"]:
            weight = result.model.get_submodule(name).weight.detach()
            assert float((weight == 0).float().mean()) == pytest.approx(0.5, abs=0.02), name


def test_qat_under_mixed_precision_gives_a_quantized_graph_and_float32_weights(teacher, monkeypatch):
    data, art = teacher
    ctx = stage_context(data, "torch")
    arrived: set = set()  # what reaches the fake-quant modules while QAT trains (a global hook would break export)
    cast = qat._float32_input
    monkeypatch.setattr(qat, "_float32_input", lambda module, args: (arrived.add(args[0].dtype), cast(module, args))[1])
    with train.computing(MIXED):
        pruned = run_stage(art, PruneConfig(sparsity=0.5, schedule="constant", epochs=1), ctx)
        result = run_stage(pruned, QuantizeConfig(method="qat", epochs=1), ctx)
    assert torch.bfloat16 in arrived  # the QAT graph's layers computed in bfloat16
    assert result.details["scheme"].endswith("sparsity-preserving")
    float_model = result.qat.float_model
    assert _float32_on_cpu(float_model) and _float32_on_cpu(result.model)
    assert _accuracy(result.model, data) >= 0.85 and _accuracy(float_model, data) >= 0.85
    for name, module in float_model.named_modules():
        if isinstance(module, LAYERS):
            assert float((module.weight == 0).float().mean()) == pytest.approx(0.5, abs=0.02), name


def test_fake_quant_modules_take_float32_from_bfloat16_layers():
    """The QAT graph's convs compute in bfloat16 under autocast; its fused fake-quant ops accept
    only float32, which `fake_quant_in_float32` gives them (without it the forward pass fails)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    data = band_dataset(n=40)
    model = BACKEND.build("cnn_small", 0.25, data.input_shape, 4, "classification", seed=0)
    prepared = qat.allow_train_eval(prepare_qat_pt2e(qat.export_for_training(model, data), qat.make_quantizer()))
    prepared.train()
    x = torch.from_numpy(np.transpose(data.x_train[:8], (0, 3, 1, 2)).copy())
    with torch.autocast("cpu", dtype=torch.bfloat16), fake_quant_inputs() as arrived:
        with pytest.raises(RuntimeError):
            prepared(x)
        with qat.fake_quant_in_float32(prepared):
            out = prepared(x)
    assert torch.bfloat16 in arrived  # what the layers before them computed in
    assert out.shape == (8, 4) and torch.isfinite(out.float()).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_on_a_gpu_is_float16_with_loss_scaling(teacher):
    data, art = teacher
    gpu = Compute("cuda:0", "mixed")
    assert train.grad_scaler(gpu).is_enabled()
    model = BACKEND.build("cnn_small", 0.5, data.input_shape, 4, "classification", seed=0)
    with train.computing(gpu), layer_dtypes() as seen:
        trained = train.fit(model, data, epochs=3, batch_size=32, learning_rate=0.003, seed=0)
    assert seen["train"] == {torch.float16} and seen["eval"] == {torch.float32}
    assert _float32_on_cpu(trained) and _accuracy(trained, data) >= 0.9
    ctx = stage_context(data, "torch")
    with train.computing(gpu):
        student = run_stage(art, DistillConfig(student={"arch": "cnn_small", "width": 0.25}, epochs=2), ctx)
        pruned = run_stage(art, PruneConfig(sparsity=0.5, schedule="constant", epochs=1), ctx)
        quantized = run_stage(pruned, QuantizeConfig(method="qat", epochs=1), ctx)
    assert _float32_on_cpu(student.model) and _float32_on_cpu(pruned.model)
    assert _float32_on_cpu(quantized.qat.float_model) and _float32_on_cpu(quantized.model)
    assert _accuracy(quantized.model, data) >= 0.85


RECIPE = """\
version: 1
seed: 0
data: {source: digits, scale: 0.0625}
teacher:
  framework: torch
  build: {arch: cnn_tiny}
  train: {epochs: 3, batch_size: 32, learning_rate: 0.003}
stages:
  - prune: {sparsity: 0.5, epochs: 1}
  - quantize: {method: qat, epochs: 1}
export: {formats: [onnx]}
evaluate: {runtimes: [onnxruntime]}
"""


@pytest.mark.slow
def test_compress_with_precision_mixed_reports_it_and_exports_no_16_bit_weights(tmp_path):
    import onnx

    recipe, out = tmp_path / "tiny_torch.yaml", tmp_path / "run"
    recipe.write_text(RECIPE)
    result = run_edgekit("compress", str(recipe), "--precision", "mixed", "--device", "cpu",
                         "--output", str(out), "-q", "--no-cache")
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["framework"] == "torch"
    assert report["compute"] == {"device": "cpu", "precision": "mixed", "workers": 1, "compute_dtype": "bfloat16"}
    files = {path.name: path for path in out.rglob("*.onnx")}
    dtypes = {name: {t.data_type for t in onnx.load(str(path)).graph.initializer} for name, path in files.items()}
    assert {"baseline.onnx", "model.onnx"} <= set(dtypes)
    for name, found in dtypes.items():
        assert not found & {onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}, name
    from edgekit.formats.onnx.saturation import saturates

    # 8-bit weights: int8, or the same values as uint8 where ORT's int8-weight kernels saturate
    eight_bit = onnx.TensorProto.UINT8 if saturates() else onnx.TensorProto.INT8
    assert onnx.TensorProto.FLOAT in dtypes["baseline.onnx"] and eight_bit in dtypes["model.onnx"]
