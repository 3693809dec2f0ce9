"""Torch -> .onnx (torch.onnx dynamo) and -> .tflite (LiteRT-Torch) writers, run on their runtimes.

Tiny models defined here: a conv net (Conv2d -> ReLU -> MaxPool -> Flatten -> Linear) for layouts and
numerics, and a ~50k-parameter MLP trained on a toy dataset for quantized sizes and agreement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
ort = pytest.importorskip("onnxruntime")
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from edgekit.formats.onnx import torch as onnx_writer  # noqa: E402
from edgekit.formats.registry import get_format, refusals  # noqa: E402
from edgekit.formats.tflite import torch as tflite_writer  # noqa: E402
from edgekit.errors import StageError  # noqa: E402
from edgekit.recipe import QuantizeConfig  # noqa: E402

nn = torch.nn
MATMUL_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


# ---- models and data -----------------------------------------------------------------------------

def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(128, 4)).eval()


def toy_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8x1 NHWC images: one of 4 fixed patterns (the class) plus noise."""
    patterns = np.random.default_rng(123).normal(0.0, 1.0, (4, 8, 8, 1)).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = patterns[y] + rng.normal(0.0, 0.7, (n, 8, 8, 1)).astype(np.float32)
    return x.astype(np.float32), y


def nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def torch_out(model: nn.Module, x_nchw: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x_nchw)).numpy()


@pytest.fixture(scope="module")
def cnn():
    return small_cnn()


@pytest.fixture(scope="module")
def calib():
    return toy_images(40, seed=1)[0]  # not a multiple of the calibration batch, on purpose


@pytest.fixture(scope="module")
def mlp():
    """Flatten -> 384 -> 64 -> 4 (49,860 parameters), trained until it separates the toy classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 384), nn.ReLU(), nn.Linear(384, 64), nn.ReLU(), nn.Linear(64, 4))
    assert sum(p.numel() for p in model.parameters()) == 49_860
    x, y = toy_images(512, seed=2)
    xt, yt = torch.from_numpy(nchw(x)), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: extra threads only contend (50x slower on a busy 2-CPU box)
    try:
        for _ in range(40):  # full batch
            loss = nn.functional.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    x_test, y_test = toy_images(200, seed=3)
    assert np.mean(torch_out(model, nchw(x_test)).argmax(-1) == y_test) >= 0.95
    return model


@pytest.fixture(scope="module")
def toy_test():
    return toy_images(200, seed=3)[0]


@pytest.fixture(scope="module")
def mlp_float(mlp, calib, tmp_path_factory):
    return tflite_writer.to_tflite(mlp, tmp_path_factory.mktemp("mlp") / "float.tflite", None, calib)


# ---- running a .tflite ---------------------------------------------------------------------------

def run_tflite(path, x: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """Outputs (dequantized to float) for inputs `x` in the file's own layout, one sample at a time."""
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for i in range(len(x)):
        sample = x[i:i + 1]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / scale + zero), info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], sample)
        interp.invoke()
        y = interp.get_tensor(out["index"])
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y)
    return np.concatenate(results), inp, out


def ops_and_tensors(path) -> tuple[list[dict], dict[int, dict]]:
    """The graph's operators (the XNNPACK DELEGATE nodes left out) and its tensors by index."""
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    return [op for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"], tensors


def weight_dtypes(path) -> set:
    ops, tensors = ops_and_tensors(path)
    return {tensors[op["inputs"][1]]["dtype"] for op in ops if op["op_name"] in MATMUL_OPS}


def float_ops(path) -> set:
    """Operators that read or write a float32 tensor."""
    ops, tensors = ops_and_tensors(path)
    return {op["op_name"] for op in ops
            if any(tensors[i]["dtype"] == np.float32 for i in [*op["inputs"], *op["outputs"]] if i >= 0)}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(-1) == b.argmax(-1)))


# ---- .onnx ---------------------------------------------------------------------------------------

def test_float_onnx_matches_torch_with_dynamic_batch(cnn, calib, tmp_path):
    path = onnx_writer.to_onnx(cnn, tmp_path / "model.onnx", calib)
    assert path.exists() and not (tmp_path / "model.onnx.data").exists()  # small models: one file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("input", "output")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [1, 8, 8]  # NCHW, symbolic batch
    for batch in (1, 3):
        x = nchw(calib[:batch])
        got = session.run(None, {"input": x})[0]
        np.testing.assert_allclose(got, torch_out(cnn, x), atol=1e-4)


def test_onnx_carries_no_stack_traces_or_local_paths(cnn, calib, tmp_path):
    import onnx

    path = onnx_writer.to_onnx(cnn, tmp_path / "model.onnx", calib)
    keys = {prop.key for node in onnx.load(str(path)).graph.node for prop in node.metadata_props}
    assert keys and onnx_writer.STACK_TRACE not in keys  # torch.onnx's other node metadata stays
    assert str(Path(torch.__file__).parent).encode() not in path.read_bytes()


def test_onnx_runtime_qdq_quantization_of_the_float_onnx(mlp, calib, toy_test, tmp_path):
    import onnx

    from edgekit.formats.onnx.quantize import quantize_onnx

    source = onnx_writer.to_onnx(mlp, tmp_path / "float.onnx", calib)
    # edgekit.formats.onnx.quantize feeds the calibration array as it is: a torch .onnx takes NCHW
    target = quantize_onnx(source, tmp_path / "int8.onnx", QuantizeConfig().plan(), nchw(calib))
    ops = {node.op_type for node in onnx.load(str(target)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert target.stat().st_size < 0.35 * source.stat().st_size
    x = nchw(toy_test)
    got = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert agreement(got, torch_out(mlp, x)) >= 0.9


def test_onnx_export_keeps_the_training_mode(cnn, calib, tmp_path):
    model = small_cnn().train()
    onnx_writer.to_onnx(model, tmp_path / "m.onnx", calib)
    assert model.training


# ---- float .tflite -------------------------------------------------------------------------------

def test_float_tflite_takes_nchw_and_matches_torch(cnn, calib, tmp_path):
    path = tflite_writer.to_tflite(cnn, tmp_path / "model.tflite", None, calib)
    got, inp, out = run_tflite(path, nchw(calib[:8]))
    assert list(inp["shape"]) == [1, 1, 8, 8] and inp["dtype"] == np.float32 and out["dtype"] == np.float32
    np.testing.assert_allclose(got, torch_out(cnn, nchw(calib[:8])), atol=1e-4)


def test_channels_last_tflite_takes_nhwc_and_matches_torch(cnn, calib, tmp_path):
    path = tflite_writer.to_tflite(cnn, tmp_path / "model.tflite", None, calib, channels_last=True)
    got, inp, _ = run_tflite(path, calib[:8])
    assert list(inp["shape"]) == [1, 8, 8, 1]
    np.testing.assert_allclose(got, torch_out(cnn, nchw(calib[:8])), atol=1e-4)


# ---- quantized .tflite ---------------------------------------------------------------------------

def test_int8_tflite_is_full_integer_small_and_agrees(mlp, mlp_float, calib, toy_test, tmp_path):
    path = tflite_writer.to_tflite(mlp, tmp_path / "int8.tflite", QuantizeConfig().plan(), calib)
    assert path.stat().st_size <= 0.35 * mlp_float.stat().st_size
    assert weight_dtypes(path) == {np.int8}
    assert float_ops(path) == set()  # every op on int8 tensors, inputs and outputs too
    got, inp, out = run_tflite(path, nchw(toy_test))
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert agreement(got, torch_out(mlp, nchw(toy_test))) >= 0.9


@pytest.mark.parametrize("io, dtype", [("float32", np.float32), ("uint8", np.uint8)])
def test_int8_tflite_with_float_or_uint8_io(mlp, mlp_float, calib, toy_test, tmp_path, io, dtype):
    path = tflite_writer.to_tflite(mlp, tmp_path / f"int8-{io}.tflite", QuantizeConfig(io=io).plan(), calib)
    assert path.stat().st_size <= 0.35 * mlp_float.stat().st_size
    assert weight_dtypes(path) == {np.int8}
    ops, _ = ops_and_tensors(path)
    assert ops[0]["op_name"] == "QUANTIZE" and ops[-1]["op_name"] in {"DEQUANTIZE", "QUANTIZE"}
    if io == "float32":
        assert float_ops(path) == {"QUANTIZE", "DEQUANTIZE"}  # only the edges are float
    got, inp, out = run_tflite(path, nchw(toy_test))
    assert inp["dtype"] == dtype and out["dtype"] == dtype
    assert agreement(got, torch_out(mlp, nchw(toy_test))) >= 0.9


def test_int8_per_tensor_weights(mlp, calib, tmp_path):
    path = tflite_writer.to_tflite(mlp, tmp_path / "int8.tflite", QuantizeConfig(per_channel=False).plan(), calib)
    ops, tensors = ops_and_tensors(path)
    weights = [tensors[op["inputs"][1]] for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    # one scale per tensor (the converter may store it repeated for every output channel)
    assert weights and all(len(set(w["quantization_parameters"]["scales"])) == 1 for w in weights)


def test_int8_channels_last(cnn, calib, tmp_path):
    path = tflite_writer.to_tflite(cnn, tmp_path / "int8.tflite", QuantizeConfig().plan(), calib, channels_last=True)
    got, inp, _ = run_tflite(path, calib)
    assert list(inp["shape"]) == [1, 8, 8, 1] and inp["dtype"] == np.int8
    assert weight_dtypes(path) == {np.int8}
    assert agreement(got, torch_out(cnn, nchw(calib))) >= 0.9


def test_dynamic_tflite_has_int8_weights_and_float_io(mlp, mlp_float, calib, toy_test, tmp_path):
    path = tflite_writer.to_tflite(mlp, tmp_path / "dynamic.tflite", QuantizeConfig(precision="dynamic").plan(), calib)
    assert path.stat().st_size <= 0.35 * mlp_float.stat().st_size
    assert weight_dtypes(path) == {np.int8}
    ops, _ = ops_and_tensors(path)
    assert "DEQUANTIZE" not in {op["op_name"] for op in ops}  # hybrid kernels, not dequantized weights
    got, inp, out = run_tflite(path, nchw(toy_test))
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32
    assert agreement(got, torch_out(mlp, nchw(toy_test))) >= 0.9


def test_float16_tflite_has_float16_weights(mlp, mlp_float, calib, toy_test, tmp_path):
    path = tflite_writer.to_tflite(mlp, tmp_path / "fp16.tflite", QuantizeConfig(precision="float16").plan(), calib)
    assert path.stat().st_size <= 0.6 * mlp_float.stat().st_size
    ops, tensors = ops_and_tensors(path)
    dequantized = [tensors[op["inputs"][0]]["dtype"] for op in ops if op["op_name"] == "DEQUANTIZE"]
    assert dequantized and set(dequantized) == {np.float16}
    got, inp, _ = run_tflite(path, nchw(toy_test))
    assert inp["dtype"] == np.float32
    np.testing.assert_allclose(got, torch_out(mlp, nchw(toy_test)), atol=2e-2)


def test_every_precision_and_io_is_listed_or_produced():
    from edgekit.formats.tflite.plans import TORCH
    from edgekit.precision import PLANS

    assert set(PLANS.values()) | {None} == set(TORCH)
    for precision, io in (("int8", "int8"), ("int8", "float32"), ("int8", "uint8"), ("dynamic", None), ("float16", None)):
        assert refusals("torch", "tflite", QuantizeConfig(precision=precision, io=io).plan()) == []
    refused = {r.key for io in ("float32", "uint8")
               for r in refusals("torch", "tflite", QuantizeConfig(method="qat", io=io).plan())}
    assert refused == {"qat.io.float32", "qat.io.uint8"}
    assert refusals("torch", "tflite", QuantizeConfig(method="qat").plan()) == []


# ---- quantization-aware models -------------------------------------------------------------------

@pytest.fixture(scope="module")
def qat_model(calib):
    """What the QAT stage hands over: a convert_pt2e'd module and the PT2EQuantizer it was trained with."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    from edgekit.backends.torch.train import set_mode

    model = small_cnn().train()
    quantizer = pq.PT2EQuantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
    # LiteRT-Torch 0.10's conv+batch-norm QAT annotators fail on torch 2.13 (they torch.export a plain
    # function); this model has no batch norm, so they have nothing to do.
    quantizer.STATIC_QAT_ONLY_OPS = []
    x = torch.from_numpy(nchw(calib))
    exported = torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    prepared = prepare_qat_pt2e(exported, quantizer)
    opt = torch.optim.SGD(prepared.parameters(), lr=1e-3)
    for _ in range(3):
        loss = prepared(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    converted = convert_pt2e(prepared, fold_quantize=False)
    set_mode(converted, False)
    return converted, quantizer


def test_quantization_aware_model_converts_to_full_integer(qat_model, calib, tmp_path):
    plan = QuantizeConfig(method="qat").plan()
    model, quantizer = qat_model
    path = tflite_writer.to_tflite(model, tmp_path / "qat.tflite", plan, calib[:1], quantizer=quantizer)
    assert weight_dtypes(path) == {np.int8} and float_ops(path) == set()
    got, inp, _ = run_tflite(path, nchw(calib))
    assert list(inp["shape"]) == [1, 1, 8, 8] and inp["dtype"] == np.int8
    assert agreement(got, torch_out(model, nchw(calib))) >= 0.9


def test_quantization_aware_model_refuses_float_io(qat_model, calib, tmp_path):
    model, quantizer = qat_model
    with pytest.raises(StageError, match="io: float32"):
        tflite_writer.to_tflite(model, tmp_path / "qat.tflite", QuantizeConfig(method="qat", io="float32").plan(), calib,
                          quantizer=quantizer)


def test_qat_plan_without_a_trained_quantizer_is_refused(cnn, calib, tmp_path):
    with pytest.raises(StageError, match="no trained quantizer"):
        tflite_writer.to_tflite(cnn, tmp_path / "m.tflite", QuantizeConfig(method="qat").plan(), calib)


# ---- other model kinds and failures --------------------------------------------------------------

def test_torchscript_model_exports_to_both_formats(cnn, calib, tmp_path):
    scripted = torch.jit.script(small_cnn())
    tflite = tflite_writer.to_tflite(scripted, tmp_path / "m.tflite", None, calib)
    np.testing.assert_allclose(run_tflite(tflite, nchw(calib[:4]))[0], torch_out(cnn, nchw(calib[:4])), atol=1e-4)
    onnx_path = onnx_writer.to_onnx(scripted, tmp_path / "m.onnx", calib)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": nchw(calib[:3])})[0]
    np.testing.assert_allclose(got, torch_out(cnn, nchw(calib[:3])), atol=1e-4)


class DataDependent(nn.Module):
    def forward(self, x):
        return x * 2 if x.sum() > 0 else x  # Python control flow on a value: torch.export cannot trace it


def test_failures_are_export_stage_errors(calib, tmp_path):
    with pytest.raises(StageError) as info:
        tflite_writer.to_tflite(DataDependent(), tmp_path / "m.tflite", None, calib)
    assert info.value.stage == "export" and "LiteRT-Torch" in str(info.value)
    with pytest.raises(StageError, match="ONNX export"):
        onnx_writer.to_onnx(DataDependent(), tmp_path / "m.onnx", calib)
    with pytest.raises(StageError, match="calibration samples"):
        tflite_writer.to_tflite(small_cnn(), tmp_path / "m.tflite", QuantizeConfig().plan(), None)


def test_writers_table():
    assert get_format("tflite").writer("torch").load() is tflite_writer.write
    assert get_format("onnx").writer("torch").load() is onnx_writer.write
