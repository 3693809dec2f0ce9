"""Selective and mixed precision (issue 12, point 2), written once for every framework and format.

For each framework, a small CNN of the zoo is trained on the digits; each case is a quantize
configuration as a recipe writes it (`keep_float`, `precision: int16x8`, `overrides`), resolved
against the model's layers as the stage does. Each file is written by the format's export flow,
run on the format's runtime, and `edgekit inspect` must read from the file the precision the plan
gave every named layer (and the plan's own precision for the others); the outputs must still agree
with the float model.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.backends import available_frameworks, get_backend
from edgekit.formats.base import ExportOptions
from edgekit.formats.inspect import inspect_model
from edgekit.formats.registry import get_format
from edgekit.layouts import to_layout
from edgekit.runtimes import get_runtime
from edgekit.stages.quantize import QuantizeConfig
from tests.helpers import digits_dataset

pytestmark = pytest.mark.slow

DATA = digits_dataset(calibration_samples=64)
FIRST, LAST = "<first>", "<last>"  # the model's first and last weight layers, named per framework
CASES = {
    "keep_float": ({"keep_float": [LAST]}, {LAST: "float"}, "int8"),
    "int16x8": ({"precision": "int16x8"}, {}, "int16x8"),
    "overrides": ({"overrides": {FIRST: "int16x8", LAST: "float"}}, {FIRST: "int16x8", LAST: "float"}, "int8"),
}


@pytest.fixture(scope="module", params=available_frameworks())
def trained(request):
    """(framework, trained cnn_tiny, its layers with weights, its float predictions on the test set)."""
    backend = get_backend(request.param)
    model = backend.build("cnn_tiny", 1.0, DATA.input_shape, 10, "classification", seed=0)
    model = backend.train(model, DATA, epochs=4, batch_size=32, learning_rate=3e-3, seed=0)
    layers = backend.weight_layers(model)
    return request.param, model, layers, backend.predict(model, DATA.x_test).argmax(-1)


def _named(value: str, layers: list[str]) -> str:
    return {FIRST: layers[0], LAST: layers[-1]}.get(value, value)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_named_layer_has_the_precision_the_plan_gave_it(trained, fmt, case, tmp_path):
    framework, model, layers, float_classes = trained
    settings, expected, base = CASES[case]
    settings = {k: ([_named(p, layers) for p in v] if isinstance(v, list) else
                    {_named(p, layers): q for p, q in v.items()} if isinstance(v, dict) else v)
                for k, v in settings.items()}
    config = QuantizeConfig(**settings)
    plan = config.plan().with_layers(config.resolve_layers(layers))
    target = get_format(fmt)
    path = tmp_path / f"model{target.suffix}"
    target.export(Artifact(framework, model, plan=plan), path, ExportOptions(calibration=DATA.x_calib), {})

    quantization = inspect_model(path)["quantization"]
    found = quantization["layers"]
    if case == "int16x8" and fmt == "tflite":  # LiteRT runs int16x8 kernels: nothing in float
        assert quantization["kind"] == "int16x8 (full integer)" and quantization["float_ops"] == []
    by_layer = {row["layer"]: row["precision"] for row in found}
    want = {layer: base for layer in layers} | {_named(k, layers): v for k, v in expected.items()}
    assert by_layer == want, found

    x = to_layout(DATA.x_test, target.writer(framework).input_layout(False))
    classes = get_runtime(target.default_runtime).open(path).predict(x).argmax(-1)
    agreement = float(np.mean(classes == float_classes))
    assert agreement >= 0.95, f"{framework} {fmt} {case}: agreement {agreement:.3f} with the float model"
