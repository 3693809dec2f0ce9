"""The .pte export flow: the torch writer lowers the plan to XNNPACK, and a quantization-aware model
ships in the form XNNPACK really runs in integers.

A float or post-training plan is written by the writer as it is (`edgekit.formats.pte.torch`). A QAT
model (convert_pt2e'd with LiteRT-Torch's PT2EQuantizer, which derives from XNNPACK's) is first lowered
as trained, its weights' quantize ops folded into int8 constants (`torch.folded_weights`): when
XNNPACK takes its quantized ops (int8 activations in the delegate, no quantize /
dequantize left to ExecuTorch's portable kernels), that file ships. Otherwise the QAT-trained float
weights (`artifact.qat.float_model`) are quantized with XNNPACK's own PT2E quantizer on the
calibration samples, as the ONNX exporter quantizes them with ONNX Runtime. `facts["quantization_choice"]`
says which, and why.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from edgekit.artifact import Artifact
from edgekit.errors import StageError
from edgekit.formats.base import ExportOptions
from edgekit.formats.pte import FORMAT
from edgekit.formats.pte.program import read_program
from edgekit.precision import Int8

_QUANT_KERNELS = ("quantized_decomposed::", "torchao::")


def integer_delegation(path: Path) -> str | None:
    """Why XNNPACK does not run the .pte at `path` in integers, or None when it does: int8
    activations inside the delegate and no quantize / dequantize left to the portable kernels."""
    program = read_program(path)
    left = sorted({op for op in program.kernels if op.startswith(_QUANT_KERNELS)})
    if left:
        return f"{', '.join(left)} left outside the XNNPACK delegate"
    quantized = any((v.get("xvalue_union_type") == "XNNQuantizedTensorValue") for d in program.delegates for v in d.values)
    return None if quantized else "no quantized tensor in the XNNPACK delegate"


def _quantization_aware(artifact: Artifact, path: Path, options: ExportOptions, facts: dict) -> None:
    write = FORMAT.writer(artifact.framework).load()
    with tempfile.TemporaryDirectory(prefix="edgekit-pte-") as tmp:
        trained = Path(tmp) / path.name
        problem = None
        try:
            write(artifact, trained, options.calibration)
            problem = integer_delegation(trained)
        except StageError as exc:
            problem = f"lowering failed ({str(exc)[:200]})"
        if problem is None:
            shutil.copyfile(trained, path)
            facts["quantization_choice"] = {
                "method": "quantization-aware (PT2E QAT)", "chosen": "QAT model as trained",
                "why": "XNNPACK's partitioner takes the QAT model's quantize/dequantize pairs: its int8 ops run in the delegate"}
            return
    float_model = artifact.qat.float_model if artifact.qat is not None else None
    if float_model is None:
        raise StageError("export", f"the quantization-aware model cannot be lowered to XNNPACK in int8 ({problem}) "
                                   "and its backend kept no float weights to quantize instead")
    plan = Int8(io="float32", per_channel=artifact.plan.per_channel)
    write(Artifact(artifact.framework, float_model, plan=plan), path, options.calibration)
    facts["quantization_choice"] = {
        "method": "quantization-aware (PT2E QAT)", "chosen": "XNNPACK PTQ of the QAT-trained float weights",
        "why": f"the QAT model as trained does not run in integers on XNNPACK ({problem}); its fine-tuned float "
               "weights were quantized with XNNPACK's quantizer on the calibration samples instead"}


def export(artifact: Artifact, path: Path, options: ExportOptions, written: dict,
           facts: dict | None = None) -> list[str]:
    """Write `path`; `facts` gets the `quantization_choice` of a quantization-aware model."""
    facts = {} if facts is None else facts
    if artifact.qat is not None:
        _quantization_aware(artifact, Path(path), options, facts)
        return []
    FORMAT.writer(artifact.framework).load()(artifact, path, options.calibration)
    return []
