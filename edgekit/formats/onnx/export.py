"""The .onnx export flow: the framework's writer gives a float file, and ONNX Runtime quantizes it.

Float models are written as they are. A quantized .onnx is made by ONNX Runtime from the float file
of the same model (`edgekit.formats.onnx.quantize`), calibrated on the same samples as the .tflite,
so both shipped files are quantized alike; the float file written for the baseline is reused when
the final model is the same model. Quantization-aware models whose backend keeps no float weights
(Keras: TF-MOT) are written by the writer itself with their trained int8; a backend that does keep
them (`artifact.qat.float_model`, torch) has those float weights quantized by ONNX Runtime.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgekit.artifact import Artifact
from edgekit.formats.base import ExportOptions
from edgekit.formats.onnx import FORMAT
from edgekit.formats.onnx.quantize import quantize_onnx
from edgekit.layouts import to_layout


def export(artifact: Artifact, path: Path, options: ExportOptions, written: dict,
           facts: dict | None = None) -> list[str]:
    """Write `path`; `written` remembers the float files of this run by model (id); `facts` gets the
    int8 `quantization_choice` (see `edgekit.formats.onnx.tuning`)."""
    writer = FORMAT.writer(artifact.framework)
    write = writer.load()
    plan = artifact.plan
    float_model = artifact.qat.float_model if artifact.qat is not None else None
    if plan is None or (artifact.qat is not None and float_model is None):
        write(artifact, path, options.calibration)
        if plan is None:
            written[id(artifact.model)] = path
        return []
    model = float_model if float_model is not None else artifact.model
    source = written.get(id(model))
    calibration = to_layout(options.calibration, writer.input_layout(False))
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as tmp:
        if source is None:
            source = write(Artifact(artifact.framework, model), Path(tmp) / "float.onnx", options.calibration)
        quantize_onnx(source, path, plan, calibration, options.threads, facts)
    return []
