"""The Session contract (edgekit/runtimes/base.py), checked once against every registered runtime.

Each runtime in `edgekit.runtimes.RUNTIMES` runs the same tests on its own tiny float and int8 files,
built in code by `tests.contract.models.TINY_MODELS`; a runtime without a builder there fails here.
What only one runtime does (XNNPACK delegation, ORT's QDQ fusion, fixed-batch fallbacks, real
third-party files) is tested in tests/runtimes/test_<runtime>.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.formats.files import file_size, model_files, param_count
from edgekit.formats.registry import get_format, runtime_for_format, runtime_for_path
from edgekit.runtimes import RUNTIMES, get_runtime
from edgekit.runtimes.base import TensorInfo, dequantize, quantize
from tests.contract.models import TINY_MODELS, TinyModels

# Unreadable bytes: random bytes, and bytes that are no protobuf and no flatbuffer either.
GARBAGE = {"random": np.random.default_rng(0).bytes(64) + b"garbage", "text": b"\x00garbage, not a protobuf\xff" * 20}


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def tiny(request, tmp_path_factory) -> TinyModels:
    """The tiny files of one registered runtime (see tests/contract/models.py)."""
    build = TINY_MODELS.get(request.param)
    if build is None:
        pytest.fail(f"runtime '{request.param}' is registered in edgekit.runtimes.RUNTIMES but "
                    "tests/contract/models.py has no TINY_MODELS builder for its files")
    models = build(tmp_path_factory.mktemp(request.param))
    assert models.runtime == request.param and {"float", "int8"} <= set(models.files)
    return models


def open_session(tiny: TinyModels, kind: str = "float", **options):
    return get_runtime(tiny.runtime).open(tiny.files[kind], **options)


def check_quantization(info: TensorInfo, dtype: str) -> None:
    """`info` has `dtype`; an integer tensor carries a usable scale and zero point, a float one none."""
    assert info.dtype == dtype, (info, dtype)
    if np.issubdtype(np.dtype(dtype), np.integer):
        limits = np.iinfo(np.dtype(dtype))
        assert info.quantized and info.scale > 0, info
        assert isinstance(info.zero_point, int) and limits.min <= info.zero_point <= limits.max, info
    else:
        assert not info.quantized and (info.scale, info.zero_point) == (None, None), info


# ---- registry and file facts ---------------------------------------------------------------------

def test_the_registry_finds_the_runtime_by_name_format_and_path(tiny):
    runtime = get_runtime(tiny.runtime)
    assert runtime.name == tiny.runtime and runtime.version() == tiny.version
    fmt = get_format(runtime.file_format)
    assert tiny.runtime in fmt.runtimes  # a format's first runtime is its default (.tflite: litert, then tflm)
    assert runtime_for_format(runtime.file_format).name == fmt.default_runtime == fmt.runtimes[0]
    for path in tiny.files.values():
        assert path.suffix == "." + runtime.file_format
        assert runtime_for_path(path).name == fmt.default_runtime


def test_file_facts_of_built_models(tiny):
    for kind, path in tiny.files.items():
        assert param_count(path) == tiny.params, kind  # int8 keeps the same tensors; biases become int32
        assert model_files(path) == [path]
        assert file_size(path)["bytes"] == path.stat().st_size


# ---- tensors and predictions ---------------------------------------------------------------------

def test_float_model_has_its_batch_dimension_and_no_quantization(tiny):
    session = open_session(tiny)
    (inp,), (out,) = session.inputs, session.outputs
    assert (inp.name, inp.shape) == (tiny.names[0], [tiny.batch_dim, tiny.features])  # -1: dynamic
    assert (out.name, out.shape) == (tiny.names[1], [tiny.batch_dim, tiny.classes])
    check_quantization(inp, "float32")
    check_quantization(out, "float32")
    assert session.input is inp


def test_float_model_predicts_like_the_reference(tiny):
    y = open_session(tiny).predict(tiny.x)
    assert y.dtype == np.float32 and y.shape == tiny.reference.shape
    np.testing.assert_allclose(y, tiny.reference, **tiny.float_tolerance)


def test_quantized_models_describe_their_boundary_tensors(tiny):
    for kind in tiny.quantized_kinds:
        session = open_session(tiny, kind)
        (inp,), (out,) = session.inputs, session.outputs
        assert (inp.shape, out.shape) == ([tiny.batch_dim, tiny.features], [tiny.batch_dim, tiny.classes]), kind
        check_quantization(inp, tiny.io_dtypes[kind])
        check_quantization(out, tiny.io_dtypes[kind])


def test_quantized_models_are_quantized_and_dequantized_at_the_boundary(tiny):
    for kind in tiny.quantized_kinds:
        y = open_session(tiny, kind).predict(tiny.x)
        assert y.dtype == np.float32 and y.shape == tiny.reference.shape, kind
        assert np.mean(y.argmax(1) == tiny.reference.argmax(1)) >= 0.9, kind
        error = np.abs(y - tiny.reference)
        # int8 error through two layers of random weights; a wrong scale or zero point is off by > 0.3
        assert error.mean() < 0.01 and error.max() < 0.2, (kind, error.mean(), error.max())


@pytest.mark.parametrize("n,batch_size,progress", [
    (200, 64, [(64, 200), (128, 200), (192, 200), (200, 200)]),  # then the resized tail of 8
    (10, 4, [(4, 10), (8, 10), (10, 10)]),
])
def test_predict_streams_batches_and_reports_progress(tiny, n, batch_size, progress):
    for kind in ("float", "int8"):
        session = open_session(tiny, kind)
        calls = []
        batched = session.predict(tiny.x[:n], batch_size=batch_size,
                                  progress=lambda done, total: calls.append((done, total)))
        if tiny.fixed_batch is None:
            assert calls == progress, kind
        else:  # a runtime that runs the file's own batch reports after every batch of that size
            step = tiny.fixed_batch
            assert calls == [(min(done, n), n) for done in range(step, n + step, step)], kind
        assert batched.dtype == np.float32 and batched.shape == (n, tiny.classes), kind
        single = session.predict(tiny.x[:min(n, 50)], batch_size=1)
        np.testing.assert_allclose(batched[:50], single, atol=1e-6)


def test_no_samples_give_an_empty_float_result(tiny):
    y = open_session(tiny, "int8").predict(tiny.x[:0])
    assert y.dtype == np.float32 and y.shape == (0, tiny.classes)


def test_wrong_sample_shape_is_an_input_error(tiny):
    f = tiny.features
    with pytest.raises(InputError, match=rf"\[{f}\].*\[{f + 1}\]"):
        open_session(tiny).predict(np.zeros((2, f + 1), np.float32))


# ---- latency and describe ------------------------------------------------------------------------

@pytest.mark.parametrize("kind,warmup,runs", [("float", 2, 30), ("int8", 3, 40)])
def test_latency_percentiles(tiny, kind, warmup, runs):
    session = open_session(tiny, kind, threads=2)
    calls = []
    lat = session.latency(warmup=warmup, runs=runs, batch=4, progress=lambda done, total: calls.append((done, total)))
    batch = tiny.fixed_batch or 4  # a runtime that cannot resize times (and reports) the file's own batch
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and lat["min"] > 0
    assert lat["min"] <= lat["mean"] <= lat["max"]
    assert (lat["runs"], lat["warmup"], lat["batch"], lat["threads"]) == (runs, warmup, batch, 2)
    assert calls[-1] == (runs, runs) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    # predict still works after latency resized the batch to 4
    assert session.predict(np.zeros((3, tiny.features), np.float32)).shape == (3, tiny.classes)
    with pytest.raises(ValueError, match="at least one timed run"):
        session.latency(warmup=0, runs=0)


def test_describe_names_runtime_version_threads_and_tensors(tiny):
    for kind in ("float", "int8"):
        session = open_session(tiny, kind, threads=2)
        info = session.describe()
        assert (info["runtime"], info["version"], info["threads"]) == (tiny.runtime, tiny.version, 2), kind
        assert info["path"] == str(tiny.files[kind])
        assert info["inputs"] == [t.to_dict() for t in session.inputs]
        assert info["outputs"] == [t.to_dict() for t in session.outputs]
        assert info["inputs"][0]["shape"] == [tiny.batch_dim, tiny.features]
        assert info["inputs"][0]["dtype"] == tiny.io_dtypes[kind]
    assert open_session(tiny).describe()["threads"] == 1  # the default


# ---- unreadable files ----------------------------------------------------------------------------

@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_garbage_files_are_input_errors(tiny, tmp_path, garbage):
    suffix = get_runtime(tiny.runtime).file_format
    bad = tmp_path / f"x.{suffix}"
    bad.write_bytes(GARBAGE[garbage])
    message = rf"x\.{suffix}.*not a valid \.{suffix} model"
    with pytest.raises(InputError, match=message):
        get_runtime(tiny.runtime).open(bad)
    with pytest.raises(InputError, match=message):
        param_count(bad)


def test_truncated_missing_and_directory_paths_are_input_errors(tiny, tmp_path):
    runtime = get_runtime(tiny.runtime)
    suffix = runtime.file_format
    cut = tmp_path / f"cut.{suffix}"
    cut.write_bytes(tiny.files["float"].read_bytes()[:200])
    with pytest.raises(InputError, match=rf"cut\.{suffix}: not a valid \.{suffix} model"):
        runtime.open(cut)
    with pytest.raises(InputError, match="not found"):
        runtime.open(tmp_path / f"missing.{suffix}")
    folder = tmp_path / f"folder.{suffix}"
    folder.mkdir()
    with pytest.raises(InputError, match="found a directory"):
        runtime.open(folder)


# ---- what every runtime shares: the registry and the boundary arithmetic ------------------------

def test_registry_dispatch():
    assert set(RUNTIMES) == {"litert", "tflm", "onnxruntime", "executorch"}
    assert runtime_for_format("onnx").name == "onnxruntime"
    assert runtime_for_format(".tflite").name == "litert"
    assert runtime_for_path("a/model.onnx").file_format == "onnx"
    with pytest.raises(InputError, match="did you mean 'onnxruntime'"):
        get_runtime("onnxruntme")
    with pytest.raises(InputError, match="expected .tflite or .onnx or .pte"):
        runtime_for_path("model.pb")


def test_every_registered_runtime_has_a_tiny_model_builder():
    assert set(RUNTIMES) <= set(TINY_MODELS)


def test_quantize_rounds_clips_and_dequantize_inverts():
    info = TensorInfo("x", [-1, 3], "int8", scale=0.5, zero_point=-10)
    q = quantize(np.array([[0.0, 1.26, 1000.0]], np.float32), info)
    assert q.dtype == np.int8 and q.tolist() == [[-10, -7, 127]]
    np.testing.assert_allclose(dequantize(q, info), [[0.0, 1.5, 68.5]])
    u8 = TensorInfo("x", [-1, 1], "uint8", scale=0.1, zero_point=128)
    assert quantize(np.array([-100.0, 0.0], np.float32), u8).tolist() == [0, 128]
    float_info = TensorInfo("y", [-1, 1], "float32")
    assert dequantize(np.array([1.5], np.float32), float_info).tolist() == [1.5]
