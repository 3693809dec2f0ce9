"""What only TensorFlow Lite Micro does, on the real TFLM / MLCommons int8 files in ../shared/models
(skipped cleanly without them): the same int8 outputs as LiteRT, the tensor arena against TFLM's own
allocation report, flash bytes, the host-latency note, and ops TFLM has no kernel for.
The Session checks shared by every runtime are in tests/contract/test_runtime_contract.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgekit.errors import StageError
from edgekit.evaluate import measure_file
from edgekit.report.markdown import render_markdown
from edgekit.runtimes import get_runtime
from edgekit.runtimes.tflm_arena import parse_report
from tests.helpers import ROOT, compiled_c_array, read_report, run_edgekit, shared_model


def _sine_x() -> np.ndarray:
    return np.linspace(0, 2 * np.pi, 200, dtype=np.float32)[:, None]


def _lstm_x() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (20, 28, 28)).astype(np.float32)


def _sww_x() -> np.ndarray:
    return np.load(shared_model("tiny_sww/calibration_samples.npz"))["specs"].astype(np.float32)


#: model -> the test samples it is checked on (the sine's x range, MNIST-like rows in 0..1, the
#: wake-word model's own 45 labelled spectrograms)
INT8_MODELS = {
    "tflm/hello_world_int8.tflite": _sine_x,
    "tflm/trained_lstm_int8.tflite": _lstm_x,
    "tiny_sww/str_ww_ref_model.tflite": _sww_x,
}


def _litert_builtin(path, x_int8: np.ndarray) -> np.ndarray:
    """The int8 outputs of LiteRT's own builtin kernels (no XNNPACK delegate), one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    found = []
    for sample in x_int8:
        interpreter.reset_all_variables()
        interpreter.set_tensor(inp, sample[None])
        interpreter.invoke()
        found.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(found)


@pytest.mark.parametrize("relative", sorted(INT8_MODELS))
def test_int8_outputs_equal_litert_within_one_quantization_step(relative):
    """Per sample, TFLM's int8 outputs are within one step of LiteRT's, on one of LiteRT's two CPU kernel
    sets: its default session (XNNPACK) or its builtin kernels. The two round differently: hello_world
    is 3 steps from XNNPACK on 4 of 200 samples (within 1 of builtin), the wake-word model up to 10
    steps from builtin on a sample (within 1 of XNNPACK)."""
    from edgekit.runtimes.base import quantize

    path = shared_model(relative)
    x = INT8_MODELS[relative]()
    micro, lite = get_runtime("tflm").open(path), get_runtime("litert").open(path)
    assert micro.outputs[0].dtype == "int8" and micro.outputs[0].scale == pytest.approx(lite.outputs[0].scale)
    step = micro.outputs[0].scale
    ours = micro.predict(x)
    raw = np.round(ours / step + micro.outputs[0].zero_point).astype(np.int32)
    builtin = _litert_builtin(path, quantize(x, micro.input)).astype(np.int32).reshape(raw.shape)
    default = np.round(lite.predict(x) / step + micro.outputs[0].zero_point).astype(np.int32)
    off = np.minimum(np.abs(raw - builtin), np.abs(raw - default))
    assert off.max() <= 1, (relative, off.max())
    assert np.mean(off == 0) >= 0.9, "most outputs are the very same int8 value"
    assert np.ptp(ours) > 2 * step, "the outputs vary with the input (not one constant)"


def _report_total(path, capfd) -> int:
    """TFLM's own RecordingMicroAllocator total, printed to fd 2 by print_allocations()."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(path.read_bytes(), arena_size=1 << 20)
    capfd.readouterr()
    interpreter.print_allocations()
    text = capfd.readouterr().err
    assert "Arena allocation total" in text, text
    return parse_report(text)["total"]


def _allocates(path, size: int) -> bool:
    """Whether TFLM allocates the model in an arena of `size` bytes (in a child: too small can crash)."""
    code = ("import sys; from tflite_micro.python.tflite_micro import runtime\n"
            "try: runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=int(sys.argv[2]))\n"
            "except RuntimeError: sys.exit(1)\n")
    return subprocess.run([sys.executable, "-c", code, str(path), str(size)], capture_output=True).returncode == 0


@pytest.mark.parametrize("relative, report_bytes", [
    ("tflm/trained_lstm_int8.tflite", 4208), ("tiny_sww/str_ww_ref_model.tflite", 16640),
    ("tflm/trained_lstm.tflite", 8272),
])
def test_arena_is_the_smallest_that_allocates_and_within_10_percent_of_tflms_report(relative, report_bytes, capfd):
    path = shared_model(relative)
    facts = get_runtime("tflm").open(path).facts()
    reported = _report_total(path, capfd)
    assert facts["arena_report_bytes"] == reported == report_bytes
    assert abs(facts["arena_bytes"] - reported) <= 0.10 * reported, facts
    assert _allocates(path, facts["arena_bytes"]) and not _allocates(path, facts["arena_bytes"] - 1)
    assert facts["flash_bytes"] == path.stat().st_size


def test_hello_world_arena_exceeds_the_report_by_the_kernels_temporary_memory(capfd):
    """TFLM's report leaves out what kernels take while they prepare: the tiny hello_world model
    needs 432 bytes more than the 1,504 its report says (+29%), and the report's figure fails."""
    path = shared_model("tflm/hello_world_int8.tflite")
    facts = get_runtime("tflm").open(path).facts()
    assert facts["arena_report_bytes"] == _report_total(path, capfd) == 1504
    assert facts["arena_bytes"] == 1936
    assert not _allocates(path, facts["arena_report_bytes"]) and not _allocates(path, 1935)
    assert _allocates(path, 1936)


def _without_a_tflm_kernel(source, target):
    """`source` with its first operator code changed to TOPK_V2, an op TFLM has no kernel for."""
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = runtime.convert_bytearray_to_object(bytearray(source.read_bytes()))
    model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.TOPK_V2
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(bytes(builder.Output()))
    return target


def test_an_op_without_a_tflm_kernel_is_a_stage_error_naming_it(tmp_path):
    path = _without_a_tflm_kernel(shared_model("tflm/hello_world_int8.tflite"), tmp_path / "topk.tflite")
    with pytest.raises(StageError, match=r"topk\.tflite: TFLite Micro has no kernel for TOPK_V2") as caught:
        get_runtime("tflm").open(path)
    assert caught.value.exit_code == 3


def test_measure_file_records_arena_flash_and_host_latency_beside_litert():
    path = shared_model("tiny_sww/str_ww_ref_model.tflite")
    data = np.load(shared_model("tiny_sww/calibration_samples.npz"))
    x, y = data["specs"].astype(np.float32), data["labels"]
    cfg = {"warmup": 1, "runs": 5, "batch": 1}
    micro = measure_file(path, "tflm", x, y, "classification", latency_cfg=cfg)
    lite = measure_file(path, "litert", x, y, "classification", latency_cfg=cfg)
    assert (micro["runtime"], lite["runtime"]) == ("tflm", "litert")
    assert micro["accuracy"] == pytest.approx(lite["accuracy"], abs=1 / 45) and micro["accuracy"] >= 0.86
    assert micro["arena_bytes"] == 16640 and micro["flash_bytes"] == micro["bytes"] == 74520
    assert "not MCU time" in micro["latency_note"] and micro["latency_ms"]["p50"] > 0
    assert "arena_bytes" not in lite and "latency_note" not in lite
    report = {"name": "x", "artifacts": [{"name": "model.tflite", "role": "final", **e} for e in (lite, micro)]}
    text = render_markdown(report)
    assert "| model.tflite | final | litert |" in text and "| model.tflite | final | tflm |" in text
    assert "model.tflite on tflm: arena 16640 bytes" in text.replace(",", "") and "not MCU time" in text


@pytest.mark.slow
def test_recipe_measures_the_ptq_wake_word_model_on_litert_and_tflm_side_by_side(tmp_path):
    shared_model("tiny_sww/str_ww_ref_model.h5")
    out = tmp_path / "run"
    result = run_edgekit("compress", str(ROOT / "recipes" / "tiny_sww.yaml"), "--output", str(out), "-q",
                         "--set", "evaluate.runtimes=[litert,tflm,onnxruntime]",
                         "--set", "gates.max_arena=17KB", "--set", "gates.max_flash=80KB")
    assert result.returncode == 0, result.stderr + result.stdout
    report = read_report(out)
    micro_gates = {g["gate"]: g for g in report["gates"] if g["gate"] in ("max_arena", "max_flash")}
    assert {(name, g["artifact"], g["passed"]) for name, g in micro_gates.items()} == {
        ("max_arena", "model.tflite on tflm", True), ("max_flash", "model.tflite on tflm", True)}
    finals = {a["runtime"]: a for a in report["artifacts"] if a["name"] == "model.tflite"}
    assert set(finals) == {"litert", "tflm"}
    lite, micro = finals["litert"], finals["tflm"]
    assert abs(micro["accuracy"] - lite["accuracy"]) <= 1 / 45 and micro["agreement"] >= 0.95
    assert micro["arena_bytes"] > 0 and micro["flash_bytes"] == micro["bytes"] == (out / "model.tflite").stat().st_size
    assert abs(micro["arena_bytes"] - micro["arena_report_bytes"]) <= 0.10 * micro["arena_report_bytes"]
    assert "not MCU time" in (out / "report.md").read_text()


@pytest.mark.slow
def test_arena_and_flash_gates_pass_and_fail_with_exit_codes_0_and_1(tmp_path):
    """`edgekit gate` on a run's report (its tflm entries) and on a bare .tflite (run on TFLM)."""
    shared_model("tiny_sww/str_ww_ref_model.h5")
    out = tmp_path / "run"
    run = run_edgekit("compress", str(ROOT / "recipes" / "tiny_sww.yaml"), "--output", str(out), "-q",
                      "--set", "evaluate.runtimes=[litert,tflm]", "--set", "export.formats=[tflite]",
                      "--set", "gates.max_arena=1KB", "--set", "export.c_array=true")
    assert run.returncode == 1 and "max_arena" in run.stdout  # the recipe's gate fails the run
    report = read_report(out)
    arena = next(a for a in report["artifacts"] if a["name"] == "model.tflite" and "arena_bytes" in a)
    # export.c_array: model.tflite as C source with the arena the run measured
    assert report["c_array"] == {"model": "model.tflite", "files": ["model_data.h", "model_data.cc"],
                                 "model_bytes": arena["flash_bytes"], "arena_bytes": arena["arena_bytes"]}
    assert f"kTensorArenaSize = {arena['arena_bytes']};" in (out / "model_data.h").read_text()
    if shutil.which("cc") and shutil.which("objcopy"):
        assert compiled_c_array(out) == (out / "model.tflite").read_bytes()
    above, below = str(arena["arena_bytes"] + 1), str(arena["arena_bytes"] - 1)
    flash = str(arena["flash_bytes"])

    passing = run_edgekit("gate", str(out), "--max-arena", above, "--max-flash", flash, "--json")
    failing = run_edgekit("gate", str(out), "--max-arena", below)
    bare = run_edgekit("gate", str(out / "model.tflite"), "--max-arena", above, "--max-flash", str(int(flash) - 1),
                       "--json")

    assert passing.returncode == 0, passing.stderr
    assert {g["gate"]: g["value"] for g in passing.json()["gates"]} == {"max_arena": arena["arena_bytes"],
                                                                        "max_flash": arena["flash_bytes"]}
    assert failing.returncode == 1 and "FAIL max_arena[model.tflite on tflm]" in failing.stdout
    assert bare.returncode == 1, bare.stderr
    assert [(g["gate"], g["value"], g["passed"]) for g in bare.json()["gates"]] == [
        ("max_arena", arena["arena_bytes"], True), ("max_flash", arena["flash_bytes"], False)]


def test_a_c_array_without_a_tflm_measurement_measures_the_arena_itself(tmp_path):
    from edgekit.run.c_array import write_c_array

    model = shared_model("tflm/hello_world_int8.tflite")
    (tmp_path / "model.tflite").write_bytes(model.read_bytes())
    report = {"artifacts": [{"name": "model.tflite", "role": "final", "format": "tflite", "runtime": "litert"}]}

    written = write_c_array(report, tmp_path)

    with get_runtime("tflm").open(model) as session:
        assert written["arena_bytes"] == session.facts()["arena_bytes"]
    assert f"kTensorArenaSize = {written['arena_bytes']};" in (tmp_path / "model_data.h").read_text()
