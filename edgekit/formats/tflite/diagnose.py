"""Per-layer quantization error of a .tflite, with AI Edge Quantizer's model validator.

`ai_edge_quantizer.model_validator.compare_model` runs a float .tflite and a quantized .tflite of
the same graph on LiteRT with every tensor kept, and gives the signal-to-noise ratio (dB) of each
quantized tensor against its float twin (P_signal / P_noise, given here in dB). The quantized file is the plan's as AI Edge Quantizer
writes it (`edgekit.formats.tflite.edge`), which keeps the float file's tensor names; the shipped
file of a Keras int8 plan comes from TensorFlow's converter instead and names its tensors
otherwise, so it cannot be matched tensor by tensor. A layer's figure is the lowest SNR among the
tensors named inside it (`edgekit.formats.layer_names.layer_of`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.formats.layer_names import layer_of
from edgekit.formats.tflite import edge
from edgekit.quiet import native_stderr_silenced

TOOL = "ai_edge_quantizer.model_validator (SNR)"


def diagnose(float_path: Path, plan, samples: np.ndarray) -> tuple[str, dict[str, dict]]:
    """(the tool, {layer: {"snr_db"}}) of the float .tflite at `float_path` quantized as `plan` says
    by AI Edge Quantizer, on `samples` (in the file's layout)."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import model_validator
    from ai_edge_quantizer.utils import validation_utils

    float_tflite = Path(float_path).read_bytes()
    signatures = Interpreter(model_content=float_tflite).get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    data = {key: [{name: samples[i:i + 1].astype(np.float32)} for i in range(len(samples))]}
    with native_stderr_silenced():  # the validator warns about keeping every tensor, the quantizer shows a bar
        quantized = edge.quantize(float_tflite, plan, samples)
        result = model_validator.compare_model(float_tflite, quantized, data,
                                               [validation_utils.ValidationErrorMetric.SNR], num_threads=1)
    compared = result.get_signature_comparison_result(key)
    found: dict[str, dict] = {}
    for tensor, metrics in {**compared.intermediate_tensors, **compared.output_tensors}.items():
        layer, snr = layer_of(tensor), metrics.get("snr")  # P_signal / P_noise, a ratio
        if layer is None or snr is None or not np.isfinite(snr) or snr <= 0:
            continue
        entry = found.setdefault(layer, {})
        entry["snr_db"] = round(min(10 * float(np.log10(snr)), entry.get("snr_db", float("inf"))), 2)
    return TOOL, found
