"""The format registry: formats by name and suffix, their writers' layouts and refusals, runtimes.

Everything here is declared data: none of these lookups imports a framework or a runtime library.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from edgekit.errors import InputError, StageError
from edgekit.formats import registry
from edgekit.formats.base import Writer
from edgekit.precision import Dynamic, Float16, Int8, Int16x8, plan_for

QAT_FLOAT_IO = ("LiteRT-Torch gives a quantization-aware torch model int8 inputs and outputs; "
                "use io: int8, or method: ptq for float32 I/O")
QAT_UINT8_IO = "LiteRT-Torch gives a quantization-aware torch model int8 inputs and outputs; use io: int8"
TORCH_SPARSE = "LiteRT-Torch has no sparse weight encoding; remove export.sparse"
KERAS_NCHW = ("Keras models are channels-last (NHWC); export.channels_last: false (NCHW) is not possible. "
              "Remove the key")


def export_options(sparse=False, channels_last=None):
    """Like the recipe's `export:` section: what `refusals` reads of it."""
    return SimpleNamespace(sparse=sparse, channels_last=channels_last)


def reasons(framework, fmt, plan=None, options=None):
    return [r.reason for r in registry.refusals(framework, fmt, plan, options)]


def test_formats_by_name_and_suffix():
    assert list(registry.FORMATS) == ["tflite", "onnx", "pte"]
    assert registry.default_formats() == ["tflite", "onnx"]  # .pte is opt-in
    assert registry.get_format(".TFLite").name == "tflite"
    assert registry.format_for_path("runs/x/model.onnx").name == "onnx"
    assert registry.find_format("model.pb") is None
    assert registry.known_suffixes() == (".tflite", ".onnx", ".pte")
    assert registry.format_for_path("app/model.pte").name == "pte"
    with pytest.raises(InputError, match="did you mean 'onnx'"):
        registry.get_format("onx")
    with pytest.raises(InputError, match=r"model.pb: cannot tell the model format .* \(expected .tflite or .onnx or .pte\)"):
        registry.format_for_path("model.pb")


def test_runtimes_come_from_the_formats():
    assert registry.runtime_names() == ("litert", "tflm", "onnxruntime", "executorch")
    assert registry.runtimes_description() == ("litert runs .tflite, tflm runs .tflite, onnxruntime runs .onnx, "
                                               "executorch runs .pte")
    assert registry.runtime_for_path("m.pte").name == "executorch"
    assert registry.runtime_for_format("tflite").name == "litert"  # the default: the first runtime listed
    assert registry.runtime_for_path("m.onnx").name == "onnxruntime"
    with pytest.raises(InputError, match="unknown model format 'pb'"):
        registry.runtime_for_format("pb")


def test_every_format_has_a_writer_per_framework_and_the_input_layout_it_gives():
    for fmt in registry.FORMATS.values():  # a framework without a writer is refused with a reason
        assert set(fmt.writers) | set(fmt.not_for) == {"keras", "torch"}, fmt.name
        assert set(fmt.writers) == set(registry.frameworks_of(fmt.name))
        assert all(isinstance(w, Writer) and ":" in w.function for w in fmt.writers.values())
    assert registry.frameworks_of("pte") == ("torch",)
    assert registry.get_format("pte").writer("torch").input_layout(True) == "nchw"
    layout = {(f, n, cl): registry.get_format(n).writer(f).input_layout(cl)
              for f in ("keras", "torch") for n in ("tflite", "onnx") for cl in (False, True)}
    assert layout == {
        ("keras", "tflite", False): "nhwc", ("keras", "tflite", True): "nhwc",
        ("keras", "onnx", False): "nhwc", ("keras", "onnx", True): "nhwc",
        ("torch", "tflite", False): "nchw", ("torch", "tflite", True): "nhwc",
        ("torch", "onnx", False): "nchw", ("torch", "onnx", True): "nchw",
    }
    with pytest.raises(StageError, match="jax models cannot be exported to onnx"):
        registry.get_format("onnx").writer("jax")


def test_io_of_a_file_follows_the_plan_except_for_float_io_formats():
    plan = plan_for("int8", "uint8")
    assert registry.get_format("tflite").io_of(plan) == "uint8"
    assert registry.get_format("tflite").io_of(None) == "float32"
    assert registry.get_format("onnx").io_of(plan) == "float32"


def test_choices_name_what_a_plan_and_the_export_options_ask_for():
    assert registry.choices() == []
    assert registry.choices(plan_for("int8", "float32")) == ["quantize.precision.int8"]
    assert registry.choices(plan_for("int8", "float32", calibration="entropy")) == [
        "quantize.precision.int8", "quantize.calibration.entropy"]
    assert registry.choices(plan_for("int8", "uint8", quantization_aware=True)) == [
        "quantize.precision.int8", "qat.io.uint8"]
    assert registry.choices(None, export_options(sparse=True, channels_last=False)) == [
        "export.sparse", "export.channels_last.false"]
    assert registry.choices(None, export_options(channels_last=True)) == []


def test_torch_tflite_refuses_quantization_aware_float_and_uint8_io():
    qat = {io: plan_for("int8", io, quantization_aware=True) for io in ("int8", "uint8", "float32")}
    assert reasons("torch", "tflite", qat["float32"]) == [QAT_FLOAT_IO]
    assert reasons("torch", "tflite", qat["uint8"]) == [QAT_UINT8_IO]
    assert reasons("torch", "tflite", qat["int8"]) == []
    assert [r.setting for r in registry.refusals("torch", "tflite", qat["uint8"])] == ["io: uint8"]
    for io in ("float32", "uint8"):  # post-training quantization gives every io; ONNX Runtime quantizes
        assert reasons("torch", "tflite", plan_for("int8", io)) == []
        assert reasons("torch", "onnx", qat[io]) == []
        assert reasons("keras", "tflite", qat[io]) == []


def test_option_refusals_belong_to_their_writers():
    sparse, nchw = export_options(sparse=True), export_options(channels_last=False)
    assert reasons("torch", "tflite", None, sparse) == [TORCH_SPARSE]
    assert reasons("torch", "onnx", None, sparse) == []
    assert reasons("keras", "tflite", None, sparse) == []
    assert reasons("keras", "tflite", None, nchw) == [KERAS_NCHW]
    assert reasons("keras", "onnx", None, nchw) == [KERAS_NCHW]
    assert reasons("torch", "tflite", None, nchw) == []
    assert reasons("keras", "tflite", None, export_options(channels_last=None)) == []
    both = registry.refusals("torch", "tflite", plan_for("int8", "float32", quantization_aware=True), sparse)
    assert [r.key for r in both] == ["export.sparse", "qat.io.float32"]
    assert registry.refusals("jax", "tflite", None, sparse) == []


PTE_KERAS = ("ExecuTorch runs PyTorch programs; a Keras model cannot be lowered to .pte — use tflite or onnx "
             "for Keras teachers")


def test_pte_is_for_torch_models_and_refuses_what_xnnpack_cannot_run():
    pte = registry.get_format("pte")
    assert (pte.runtimes, pte.float_io, pte.by_default) == (("executorch",), True, False)
    assert pte.refusal_of("keras") == PTE_KERAS and pte.refusal_of("torch") is None
    with pytest.raises(StageError, match="a Keras model cannot be lowered to .pte"):
        pte.writer("keras")
    for plan in (None, plan_for("int8", "float32"), plan_for("int8", "int8", per_channel=False), plan_for("dynamic"),
                 plan_for("int8", "int8", quantization_aware=True), plan_for("int8", "float32", quantization_aware=True)):
        assert reasons("torch", "pte", plan) == [], plan
    assert [r.setting for r in registry.refusals("torch", "pte", plan_for("int16x8"))] == ["precision: int16x8"]
    assert [r.setting for r in registry.refusals("torch", "pte", plan_for("float16"))] == ["precision: float16"]
    for rule in ("percentile", "entropy"):
        refused = registry.refusals("torch", "pte", plan_for("int8", "float32", calibration=rule))
        assert [r.key for r in refused] == [f"quantize.calibration.{rule}"]
    assert reasons("torch", "pte", None, export_options(sparse=True))[0].startswith("ExecuTorch's XNNPACK delegate")
    assert reasons("torch", "pte", None, export_options(channels_last=True)) == []
    assert registry.get_format("pte").io_of(plan_for("int8", "int8")) == "float32"


def test_check_plan_raises_at_export_time():
    with pytest.raises(StageError, match=r"io: float32 for a torch \.tflite: LiteRT-Torch gives"):
        registry.check_plan("torch", "tflite", plan_for("int8", "float32", quantization_aware=True))
    registry.check_plan("torch", "tflite", plan_for("int8", "float32"))
    registry.check_plan("keras", "tflite", None)


def test_reader_for_a_suffix_without_a_format_names_the_file():
    with pytest.raises(InputError, match=r"m\.pb: cannot count parameters of a '\.pb' file \(expected .tflite or .onnx or .pte\)"):
        registry.reader_for_path("m.pb", "cannot count parameters of")


def test_the_registry_imports_no_framework_and_no_implementation_module():
    code = ("import sys, edgekit.formats.registry as r; r.refusals('torch', 'tflite'); r.get_format('onnx').writer('torch'); "
            "heavy = [m for m in ('tensorflow', 'torch', 'onnx', 'onnxruntime', 'ai_edge_litert', "
            "'edgekit.formats.tflite.torch', 'edgekit.formats.onnx.reader', 'edgekit.runtimes') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_precision_plan_is_realized_by_every_writer():
    """A new Plan subclass without a realization in each format's table fails here, not in a user's run."""
    from edgekit.formats.onnx.quantize import PLANS as ONNX_RUNTIME
    from edgekit.formats.tflite.plans import KERAS, TORCH
    from edgekit.precision import PLANS

    plans = set(PLANS.values())
    assert plans == {Int8, Int16x8, Dynamic, Float16}
    assert set(KERAS) == set(TORCH) == plans | {None}  # None: a float32 file
    assert set(ONNX_RUNTIME) == plans  # a float .onnx is written as it is, never through the quantizer
