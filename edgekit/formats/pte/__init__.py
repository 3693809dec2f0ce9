"""The .pte format (an ExecuTorch program, XNNPACK-delegated), for PyTorch teachers only.

ExecuTorch runs programs lowered from `torch.export` graphs: the torch writer lowers the model with
the XNNPACK partitioner (`edgekit.formats.pte.torch`), so the file runs on Android, iOS and embedded
Linux through ExecuTorch's runtime with its XNNPACK backend. int8 is XNNPACK's own PT2E quantizer
(static, per channel unless `per_channel: false`; `keep_float` layers stay float) or, for a
quantization-aware model, the QAT-trained model (`edgekit.formats.pte.export`). The quantize/dequantize
pairs stay inside the program, so inputs and outputs are float32 whatever the plan (`float_io`), and
the input is NCHW with a static batch of 1 (the runtime feeds one sample at a time).

What the writer cannot produce is declared below as data, read when a recipe is validated.
"""

from edgekit.formats.base import Format, Refusal, Writer

_XNNPACK = "ExecuTorch's XNNPACK quantizer"

FORMAT = Format(
    name="pte", suffix=".pte", runtimes=("executorch",),
    description="ExecuTorch program (XNNPACK delegate), for Android, iOS and embedded Linux apps",
    writers={
        "torch": Writer(
            "edgekit.formats.pte.torch:write", layout="nchw",
            refusals=(
                Refusal("export.sparse", "export.sparse: true",
                        "ExecuTorch's XNNPACK delegate stores dense weights; remove export.sparse "
                        "(or export the sparse file as tflite only)"),
                Refusal("quantize.precision.int16x8", "precision: int16x8",
                        f"{_XNNPACK} has no 16-bit activations; use precision: int8 (with keep_float "
                        "for sensitive layers), or drop pte from export.formats"),
                Refusal("quantize.precision.float16", "precision: float16",
                        "edgekit's .pte keeps float32 inputs and outputs and ExecuTorch's XNNPACK lowering "
                        "has no float16-weights mode for them; use precision: int8 or dynamic, or drop pte "
                        "from export.formats"),
                Refusal("quantize.calibration.percentile", "calibration: percentile",
                        f"{_XNNPACK} chooses activation ranges with its own observers; use calibration: "
                        "minmax, or drop pte from export.formats"),
                Refusal("quantize.calibration.entropy", "calibration: entropy",
                        f"{_XNNPACK} chooses activation ranges with its own observers; use calibration: "
                        "minmax, or drop pte from export.formats"),
            )),
    },
    not_for={"keras": "ExecuTorch runs PyTorch programs; a Keras model cannot be lowered to .pte — "
                      "use tflite or onnx for Keras teachers"},
    exporter="edgekit.formats.pte.export:export",
    reader="edgekit.formats.pte.reader",
    inspector="edgekit.formats.pte.inspect:read_pte",
    float_io=True,
    by_default=False,  # opt-in: export.formats: [tflite, onnx, pte]
)
