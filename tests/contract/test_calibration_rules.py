"""Calibration rules (issue 12, "better calibration"): `quantize.calibration: percentile | entropy`,
written once for every framework and format.

The same plan is exported with min/max ranges and with the rule; every activation range the rule's
file holds must be at most the min/max file's (a rule clips, it never widens), and some must be
narrower (the rule reached the file): by at least `NARROWER[rule]`. On clean data the percentile
rule (99.999th, on a 2048-bin histogram) clips only the top of one bin; the entropy rule clips
more. In every case the int8 file must still agree with the float model on
its runtime. The ranges are compared on int16x8 files, which each format writes with one quantizer
whatever the rule (ONNX Runtime's quantize_static; AI Edge Quantizer), so tensors keep their names.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.backends import available_frameworks, get_backend
from edgekit.formats.base import ExportOptions
from edgekit.formats.registry import get_format
from edgekit.layouts import to_layout
from edgekit.precision import plan_for
from edgekit.runtimes import get_runtime
from tests.helpers import digits_dataset

pytestmark = pytest.mark.slow

DATA = digits_dataset(calibration_samples=64)
NARROWER = {"percentile": 1 - 1e-5, "entropy": 0.98}  # the narrowest range over the min/max one is below


@pytest.fixture(scope="module", params=available_frameworks())
def trained(request):
    """(framework, trained cnn_tiny, its float classes on the test set)."""
    backend = get_backend(request.param)
    model = backend.build("cnn_tiny", 1.0, DATA.input_shape, 10, "classification", seed=0)
    model = backend.train(model, DATA, epochs=4, batch_size=32, learning_rate=3e-3, seed=0)
    return request.param, model, backend.predict(model, DATA.x_test).argmax(-1)


def _activation_scales(path) -> dict[str, float]:
    """{activation tensor: its quantization scale} as the file holds it."""
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        return {d["name"]: float(d["quantization_parameters"]["scales"][0])
                for d in interpreter.get_tensor_details()
                if d["dtype"] == np.int16 and len(d["quantization_parameters"]["scales"]) == 1}
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {node.input[0]: float(values[node.input[1]]) for node in model.graph.node
            if node.op_type == "QuantizeLinear" and node.input[0] not in values and values[node.input[1]].size == 1}


def _export(framework, model, fmt, plan, tmp_path, stem):
    target = get_format(fmt)
    path = tmp_path / f"{stem}{target.suffix}"
    target.export(Artifact(framework, model, plan=plan), path, ExportOptions(calibration=DATA.x_calib), {})
    return path


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("calibration", ["percentile", "entropy"])
def test_a_calibration_rule_clips_the_ranges_and_the_file_still_agrees(trained, fmt, calibration, tmp_path):
    framework, model, float_classes = trained
    minmax = _activation_scales(_export(framework, model, fmt, plan_for("int16x8"), tmp_path, "minmax"))
    ruled = _activation_scales(_export(framework, model, fmt, plan_for("int16x8").with_calibration(calibration),
                                       tmp_path, calibration))
    shared = sorted(set(minmax) & set(ruled))
    assert len(shared) >= 3 and len(shared) == len(minmax), (sorted(minmax), sorted(ruled))
    ratios = np.array([ruled[name] / minmax[name] for name in shared])
    assert ratios.max() <= 1.0 + 1e-4, dict(zip(shared, ratios.round(4)))
    assert ratios.min() < NARROWER[calibration], dict(zip(shared, ratios.round(4)))

    path = _export(framework, model, fmt, plan_for("int8").with_calibration(calibration), tmp_path, "int8")
    target = get_format(fmt)
    x = to_layout(DATA.x_test, target.writer(framework).input_layout(False))
    classes = get_runtime(target.default_runtime).open(path).predict(x).argmax(-1)
    agreement = float(np.mean(classes == float_classes))
    assert agreement >= 0.9, f"{framework} {fmt} int8 {calibration}: agreement {agreement:.3f} with the float model"
