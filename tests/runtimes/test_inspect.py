"""`edgekit inspect` (edgekit.formats.inspect / cli_inspect) on real third-party models and on tiny models built here.

What is read from the file is checked against an independent reader: LiteRT's Interpreter for
.tflite I/O and per-tensor quantization, ONNX Runtime's session for .onnx I/O. The --json output is
validated against edgekit/schemas/inspect.schema.json. TensorFlow is used only to MAKE .tflite test
models and, in one test, for the GPU analyzer that edgekit runs through edgekit.backends.keras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.inspect import inspect_command
from edgekit.errors import InputError
from edgekit.formats.inspect import inspect_model, schema
from tests.contract.models import onnx_mlp, quantize_qdq
from tests.helpers import ROOT, SHARED_MODELS, shared_model
from tests.runtimes.jsonschema_subset import check_schema, validate

SHARED_TFLITE = sorted(p.relative_to(SHARED_MODELS).as_posix() for p in SHARED_MODELS.glob("tflm/*.tflite"))
SHARED_TFLITE += ["tiny_sww/str_ww_ref_model.tflite"]
EXPECTED_KIND = {"hello_world_float": "float", "hello_world_int8": "int8 (full integer)",
                 "trained_lstm": "float", "trained_lstm_int8": "int8 (full integer)",
                 "str_ww_ref_model": "int8 (full integer)"}
ORT_DTYPES = {"tensor(float)": "float32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(int64)": "int64", "tensor(float16)": "float16"}


def inspect_json(*args: str) -> dict:
    result = CliRunner().invoke(inspect_command, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ---- the schema ------------------------------------------------------------------------------

def test_schema_ships_in_the_package_and_uses_only_the_checked_keywords():
    data = schema()
    path = ROOT / "edgekit" / "schemas" / "inspect.schema.json"

    check_schema(data)

    assert path.is_file() and data["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_validator_reports_violations():
    # the control: the subset validator catches what the schema forbids
    bad = {"schema_version": 1, "format": "pb", "bytes": -1, "inputs": [{"name": 3}]}

    errors = validate(bad, schema())

    assert any("'pb' is not one of" in e for e in errors)
    assert any("bytes: -1 < minimum" in e for e in errors)
    assert any("missing required property 'ops'" in e for e in errors)
    assert any("inputs[0].name: expected string" in e for e in errors)


# ---- real third-party .tflite files ----------------------------------------------------------

@pytest.mark.parametrize("relative", SHARED_TFLITE)
def test_tflite_io_matches_litert_interpreter(relative):
    from ai_edge_litert.interpreter import Interpreter

    path = shared_model(relative)
    interpreter = Interpreter(model_path=str(path))

    info = inspect_model(path)

    for ours, theirs in [(info["inputs"], interpreter.get_input_details()),
                         (info["outputs"], interpreter.get_output_details())]:
        assert len(ours) == len(theirs)
        for entry, detail in zip(ours, theirs):
            assert entry["name"] == detail["name"]
            assert entry["dtype"] == np.dtype(detail["dtype"]).name
            assert entry["shape"] == [int(d) for d in detail["shape_signature"]]
            scale, zero_point = detail["quantization"]
            if scale == 0.0 and zero_point == 0:
                assert entry["scale"] is None and entry["zero_point"] is None
            else:
                assert entry["scale"] == pytest.approx(scale, rel=1e-7) and entry["zero_point"] == zero_point


def test_per_channel_quantization_of_every_tensor_matches_litert():
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.formats.tflite import schema as tflite_schema
    from edgekit.formats.tflite.inspect import quantization

    path = shared_model("tiny_sww/str_ww_ref_model.tflite")
    _, model, _ = tflite_schema.load_model(path)
    subgraph = model.Subgraphs(0)
    details = Interpreter(model_path=str(path)).get_tensor_details()

    per_channel = 0
    for detail in details:
        ours = quantization(subgraph.Tensors(detail["index"]))
        params = detail["quantization_parameters"]
        scales = [float(s) for s in params["scales"]]
        if len(scales) > 1:
            per_channel += 1
            assert ours["scale"] == pytest.approx(scales, rel=1e-7)
            assert ours["zero_point"] == [int(z) for z in params["zero_points"]]
            assert ours["quantized_dimension"] == params["quantized_dimension"]
        elif scales:
            assert ours["scale"] == pytest.approx(scales[0], rel=1e-7) and ours["quantized_dimension"] is None
        else:
            assert ours["scale"] is None
    assert per_channel >= 8  # its 4 CONV_2D and 4 DEPTHWISE_CONV_2D filters are per-channel


@pytest.mark.parametrize("relative", SHARED_TFLITE)
def test_tflite_json_follows_the_schema(relative):
    path = shared_model(relative)

    data = inspect_json(str(path), "--no-gpu-check", "--top", "3")

    assert validate(data, schema()) == []
    assert data["format"] == "tflite" and data["bytes"] == path.stat().st_size
    assert data["quantization"]["kind"] == EXPECTED_KIND[path.stem]
    assert data["quantization"]["float_ops"] == []
    assert [s["name"] for s in data["signatures"]] == ["serving_default"]
    assert len(data["tensors_by_size"]) == 3
    sizes = [t["bytes"] for t in data["tensors_by_size"]]
    assert sizes == sorted(sizes, reverse=True)
    assert data["gpu_delegate"] == {"available": False, "reason": "not checked (--no-gpu-check)"}


def test_shared_model_facts():
    path = shared_model("tiny_sww/str_ww_ref_model.tflite")

    info = inspect_model(path, top=1)

    assert info["ops"] == {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "FULLY_CONNECTED": 1, "RESHAPE": 1, "SOFTMAX": 1}
    assert info["inputs"][0]["shape"] == [-1, 30, 1, 40] and info["inputs"][0]["dtype"] == "int8"
    assert info["tensors_by_size"][0]["bytes"] == 16384  # a 128x1x1x128 int8 pointwise filter
    assert info["signatures"][0]["inputs"] == ["input_1"] and info["signatures"][0]["outputs"] == ["dense"]


# ---- .onnx built here ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx")
    paths = {name: folder / f"{name}.onnx" for name in ("float", "int8", "cumsum_float", "cumsum_int8", "excluded")}
    onnx_mlp(paths["float"])
    quantize_qdq(paths["float"], paths["int8"])
    onnx_mlp(paths["cumsum_float"], middle="CumSum")
    quantize_qdq(paths["cumsum_float"], paths["cumsum_int8"])
    quantize_qdq(paths["float"], paths["excluded"], nodes_to_exclude=["fc2"])
    return paths


def test_onnx_float_and_qdq_int8(onnx_models):
    import onnxruntime

    for name, kind in [("float", "float"), ("int8", "int8 (full integer)")]:
        path = onnx_models[name]
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        data = inspect_json(str(path))

        assert validate(data, schema()) == [], name
        assert data["format"] == "onnx" and data["quantization"]["kind"] == kind
        assert [(i["name"], i["dtype"]) for i in data["inputs"]] == \
            [(a.name, ORT_DTYPES[a.type]) for a in session.get_inputs()]
        assert [(o["name"], o["dtype"]) for o in data["outputs"]] == \
            [(a.name, ORT_DTYPES[a.type]) for a in session.get_outputs()]
        assert data["inputs"][0]["shape"] == [-1, 8] and data["inputs"][0]["scale"] is None
        assert data["gpu_delegate"]["available"] is False and data["signatures"] == []
    int8 = inspect_model(onnx_models["int8"])
    after = int8["inputs"][0]["quantization_after_input"]
    assert after["dtype"] == "int8" and after["scale"] > 0 and after["axis"] is None
    assert int8["ops"]["QuantizeLinear"] >= 1 and int8["ops"]["Gemm"] == 2
    assert int8["quantization"]["float_ops_from"] == "onnxruntime optimized graph"
    assert "quantization_after_input" not in inspect_model(onnx_models["float"])["inputs"][0]


def _ort_optimized_ops(path: Path, tmp_path: Path) -> list[str]:
    """Op types of ONNX Runtime's own CPU-optimized graph of `path` (independent of edgekit)."""
    import onnx
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]


def test_onnx_op_without_integer_kernel_is_flagged(onnx_models, monkeypatch, tmp_path):
    from edgekit.formats.onnx import inspect as inspect_onnx

    optimized = _ort_optimized_ops(onnx_models["cumsum_int8"], tmp_path)
    checked = inspect_model(onnx_models["cumsum_int8"])["quantization"]
    monkeypatch.setattr(inspect_onnx, "_ort_optimized", lambda path: None)  # the graph rules alone
    rules = inspect_model(onnx_models["cumsum_int8"])["quantization"]

    assert "CumSum" in optimized and "QGemm" in optimized  # ORT itself keeps CumSum in float
    for result, source in [(checked, "onnxruntime optimized graph"), (rules, "graph rules")]:
        assert result["kind"] == "mixed" and result["float_ops_from"] == source
        assert [(op["op"], op["name"]) for op in result["float_ops"]] == [("CumSum", "cumsum")]
    assert checked["float_ops"][0]["index"] == rules["float_ops"][0]["index"]
    assert "no integer kernel for CumSum" in checked["float_ops"][0]["reason"]
    assert validate(inspect_model(onnx_models["cumsum_int8"]), schema()) == []


def test_onnx_excluded_node_follows_what_onnxruntime_runs(onnx_models, monkeypatch, tmp_path):
    # nodes_to_exclude leaves fc2's weights in float32: the graph rules flag it, while ONNX Runtime
    # (1.32 at least) quantizes such weights itself when fc2 sits between DQ and Q; inspect reports what ORT runs
    from edgekit.formats.onnx import inspect as inspect_onnx

    optimized = _ort_optimized_ops(onnx_models["excluded"], tmp_path)
    checked = inspect_model(onnx_models["excluded"])["quantization"]
    monkeypatch.setattr(inspect_onnx, "_ort_optimized", lambda path: None)
    rules = inspect_model(onnx_models["excluded"])["quantization"]

    assert [(op["op"], op["name"], op["reason"]) for op in rules["float_ops"]] == \
        [("Gemm", "fc2", "float32 weights 'w2' are not quantized")]
    float_gemm_left = "Gemm" in optimized
    assert checked["kind"] == ("mixed" if float_gemm_left else "int8 (full integer)")
    assert [op["name"] for op in checked["float_ops"]] == (["fc2"] if float_gemm_left else [])


def test_onnx_dynamic_quantization_is_not_called_int8(onnx_models, tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    target = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(onnx_models["float"]), str(target))

    result = inspect_model(target)["quantization"]
    layers = result.pop("layers")

    assert result == {"kind": "int8 weights, float activations (dynamic range)", "float_ops": [],
                      "float_ops_from": None}
    assert layers and {row["precision"] for row in layers} == {"dynamic"}


# ---- .tflite built with TensorFlow ------------------------------------------------------------

@pytest.fixture(scope="module")
def tf_models(tmp_path_factory):
    """One small Dense model converted five ways, plus one with tf.math.cumsum in the middle.

    The first kernel has 32 x 64 = 2048 elements: the dynamic-range converter leaves weights under
    1024 elements in float, and the model would then be a float one."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    pytest.importorskip("tensorflow")
    from edgekit.backends.keras.compat import keras, tf

    folder = tmp_path_factory.mktemp("tflite")
    rng = np.random.default_rng(0)

    def build(cumsum: bool):
        inputs = keras.Input((32,), name="x")
        h = keras.layers.Dense(64, activation="relu", name="d1")(inputs)
        if cumsum:
            h = keras.layers.Lambda(lambda t: tf.math.cumsum(t, axis=-1), name="cumsum")(h)
        return keras.Model(inputs, keras.layers.Dense(3, name="d2")(h))

    def representative():
        for _ in range(16):
            yield [rng.standard_normal((1, 32)).astype(np.float32)]

    def convert(model, name, precision, io=None):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [] if precision == "float" else [tf.lite.Optimize.DEFAULT]
        if precision == "int8":
            converter.representative_dataset = representative
            # TFLITE_BUILTINS next to INT8: an op without an int8 kernel stays in float
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            if io:
                converter.inference_input_type = converter.inference_output_type = io
        elif precision == "float16":
            converter.target_spec.supported_types = [tf.float16]
        path = folder / f"{name}.tflite"
        with warnings.catch_warnings():  # "Statistics for quantized inputs were expected" (int8 I/O)
            warnings.simplefilter("ignore")
            path.write_bytes(converter.convert())
        return path

    plain, mixed = build(False), build(True)
    return {
        "float": convert(plain, "float", "float"),
        "int8": convert(plain, "int8", "int8", tf.int8),
        "int8_float_io": convert(plain, "int8_float_io", "int8"),
        "dynamic": convert(plain, "dynamic", "dynamic"),
        "float16": convert(plain, "float16", "float16"),
        "mixed": convert(mixed, "mixed", "int8", tf.int8),
    }


def test_int8_model_with_a_float_op_is_flagged(tf_models):
    info = inspect_model(tf_models["mixed"])

    quant = info["quantization"]
    assert quant["kind"] == "mixed"
    ops = {(op["op"], op["reason"]) for op in quant["float_ops"]}
    assert ("CUMSUM", "float32 inputs/outputs") in ops
    # the DEQUANTIZE / QUANTIZE around it sit in the middle of the graph, so they are float work too
    assert {"DEQUANTIZE", "QUANTIZE"} <= {op for op, _ in ops}
    assert "FULLY_CONNECTED" not in {op for op, _ in ops}
    assert info["inputs"][0]["dtype"] == "int8"
    assert validate(info, schema()) == []


def test_full_int8_models_report_no_float_op(tf_models):
    int8 = inspect_model(tf_models["int8"])
    float_io = inspect_model(tf_models["int8_float_io"])

    layers = int8["quantization"].pop("layers")
    assert int8["quantization"] == {"kind": "int8 (full integer)", "float_ops": [], "float_ops_from": "tensor types"}
    assert layers and all(row["precision"] == "int8" and row["weights"] == "int8" for row in layers)
    # float I/O: the QUANTIZE / DEQUANTIZE at the model's edges are expected, not float compute
    assert float_io["quantization"]["kind"] == "int8 (full integer)"
    assert {"QUANTIZE", "DEQUANTIZE"} <= set(float_io["ops"])
    assert float_io["inputs"][0]["dtype"] == "float32" and float_io["inputs"][0]["scale"] is None


@pytest.mark.parametrize("name, kind, precision", [
    ("float", "float", "float"), ("float16", "float16 weights", "float16"),
    ("dynamic", "int8 weights, float activations (dynamic range)", "dynamic")])
def test_non_int8_kinds(tf_models, name, kind, precision):
    """(The dynamic-range converter leaves a weight under 1,024 elements float: the last layer here.)"""
    quantization = inspect_model(tf_models[name])["quantization"]
    layers = quantization.pop("layers")
    assert quantization == {"kind": kind, "float_ops": [], "float_ops_from": None}
    assert layers[0]["precision"] == precision and {row["precision"] for row in layers} <= {precision, "float"}


def test_human_output_warns_about_float_ops(tf_models):
    result = CliRunner().invoke(inspect_command, [str(tf_models["mixed"]), "--no-gpu-check"])

    assert result.exit_code == 0, result.output
    assert "⚠ 3 ops run in float in this int8 model: DEQUANTIZE (#1), CUMSUM (#2), QUANTIZE (#3)" in result.stdout
    assert "quantization: mixed" in result.stdout and "serving_default" in result.stdout


# ---- GPU analyzer ----------------------------------------------------------------------------

def test_gpu_check_on_a_shared_model():
    pytest.importorskip("tensorflow")
    path = shared_model("tflm/hello_world_int8.tflite")
    from edgekit.backends.keras.analyzer import gpu_compatibility

    result = gpu_compatibility(path)
    info = inspect_model(path, gpu_check=True)

    assert isinstance(result["compatible"], bool) and "FULLY_CONNECTED" in result["report"]
    assert info["gpu_delegate"]["available"] is True
    assert info["gpu_delegate"]["compatible"] == result["compatible"]
    assert validate(info, schema()) == []


def test_analyzer_report_parsing():
    pytest.importorskip("tensorflow")
    from edgekit.backends.keras.analyzer import parse_report

    ok = "Your model looks compatible with GPU delegate on TFLite runtime version 2.21.0.\n"
    bad = ("  Op#0 CUMSUM(T#0) -> [T#1]\nGPU COMPATIBILITY WARNING: Not supported op CUMSUM\n\n"
           "GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 0\n")

    assert parse_report(ok) == {"compatible": True, "warnings": []}
    assert parse_report(bad)["compatible"] is False
    assert parse_report(bad)["warnings"][0] == "Not supported op CUMSUM"
    assert parse_report("")["compatible"] is False


def test_without_tensorflow_the_gpu_check_says_why(monkeypatch):
    import importlib.util

    from edgekit.formats.tflite import gpu as inspect_module

    path = shared_model("tflm/hello_world_float.tflite")
    real = importlib.util.find_spec
    monkeypatch.setattr(inspect_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorflow" else real(name, *a))

    info = inspect_model(path, gpu_check=True)

    assert info["gpu_delegate"] == {"available": False, "reason": "TensorFlow is not installed"}


# ---- bad files -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, content", [(".tflite", b"this is not a model"), (".onnx", b"\x08\x07garbage\xff"),
                                             (".tflite", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 8)])
def test_corrupt_file_exits_2_naming_it(tmp_path, suffix, content):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    code = "import sys; from edgekit.cli.inspect import inspect_command; inspect_command(sys.argv[1:])"

    proc = subprocess.run([sys.executable, "-c", code, str(path), "--no-gpu-check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr.replace("\n", "") and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_truncated_real_model_is_bad_input(tmp_path):
    source = shared_model("tiny_sww/str_ww_ref_model.tflite")
    path = tmp_path / "truncated.tflite"
    path.write_bytes(source.read_bytes()[:3000])  # identifier intact, buffers cut off

    with pytest.raises(InputError, match="truncated.tflite: not a valid .tflite model"):
        inspect_model(path)


def test_missing_file_and_unknown_suffix(tmp_path):
    other = tmp_path / "model.pb"
    other.write_bytes(b"x")

    result = CliRunner().invoke(inspect_command, [str(tmp_path / "nope.tflite")])

    assert result.exit_code == 2 and "model file not found" in result.stderr
    with pytest.raises(InputError, match="expected .tflite or .onnx"):
        inspect_model(other)


def test_inspect_without_gpu_check_imports_no_framework():
    path = shared_model("tflm/hello_world_int8.tflite")
    code = ("import sys; from edgekit.formats.inspect import inspect_model; inspect_model(sys.argv[1]); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tf_keras', 'torch', 'keras'}))")

    proc = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
