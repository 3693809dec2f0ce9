"""Clipped activation ranges for AI Edge Quantizer: the plan's `percentile` and `entropy` calibration.

AI Edge Quantizer calibrates a .tflite by keeping each activation tensor's min and max (its
quantization statistics, "QSVs"); it has no histogram calibration. For a plan whose `calibration`
is `percentile` or `entropy`, edgekit runs the float .tflite on the same calibration batches on
LiteRT with every tensor preserved, hands each activation's values over all batches at once to ONNX
Runtime's `HistogramCollector` (the implementation behind ORT's Percentile and Entropy calibrators,
which collect the same way) with the settings of `edgekit.precision.HISTOGRAM`, and replaces the
min/max AI Edge Quantizer found by the collector's thresholds. The .tflite and the .onnx of one
plan are thus clipped by one rule.

A range always contains 0 (an int8 zero point must exist), and is never wider than the min/max.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from edgekit.formats.tflite import schema as tflite_schema
from edgekit.precision import HISTOGRAM


def _collector(calibration: str):
    """ONNX Runtime's HistogramCollector set as `edgekit.precision.HISTOGRAM` says for `calibration`."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    settings = {"num_quantized_bins": 128, "percentile": 99.999, **HISTOGRAM[calibration]}
    return HistogramCollector(method=calibration, scenario="same", **settings)


def _activations(content: bytes) -> set[str]:
    """Names of the tensors of the main subgraph of `content` that hold no constant."""
    schema, model, buf = tflite_schema.load_model(None, content)
    subgraph = model.Subgraphs(0)
    names = set()
    for i in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(i)
        if tflite_schema._buffer_bytes(model, buf, tensor) is None:
            names.add(tensor.Name().decode(errors="replace"))
    return names


def thresholds(float_tflite: bytes, batches: list[np.ndarray], names: list[str], calibration: str
               ) -> dict[str, tuple[float, float]]:
    """{tensor name: (low, high)} for the activation tensors `names` of `float_tflite`, by the
    histogram rule `calibration` over `batches` (inputs of the model's single input)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=float_tflite, experimental_preserve_all_tensors=True, num_threads=1)
    interpreter.allocate_tensors()
    index = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    wanted = [n for n in names if n in index]
    values: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    feed = interpreter.get_input_details()[0]["index"]
    for batch in batches:
        interpreter.set_tensor(feed, batch)
        interpreter.invoke()
        for n in wanted:
            values[n].append(np.array(interpreter.get_tensor(index[n]), np.float32))
    collector = _collector(calibration)
    with contextlib.redirect_stdout(io.StringIO()):  # the collector prints its progress
        collector.collect({n: np.concatenate([v.ravel() for v in arrays]) for n, arrays in values.items()})
        found = collector.compute_collection_result()
    return {n: (float(found[n][0]), float(found[n][1])) for n in wanted}


def clipped(float_tflite: bytes, batches: list[np.ndarray], qsvs: dict, calibration: str) -> dict:
    """A copy of AI Edge Quantizer's min/max statistics `qsvs` ({tensor: {"min", "max", ...}}) with
    each activation's range replaced by the `calibration` rule's (see the module docstring)."""
    activations = _activations(float_tflite)
    found = thresholds(float_tflite, batches, [n for n in qsvs if n in activations], calibration)
    result = dict(qsvs)
    for name, (low, high) in found.items():
        stats = qsvs[name]
        low = max(min(low, 0.0), float(np.min(stats["min"])))
        high = min(max(high, 0.0), float(np.max(stats["max"])))
        result[name] = {**stats, "min": np.full_like(stats["min"], low), "max": np.full_like(stats["max"], high)}
    return result
