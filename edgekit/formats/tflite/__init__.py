"""The .tflite format (LiteRT flatbuffers): its writers per framework and what they refuse.

The refusals are declared here, beside the writers they concern, as plain data: recipe validation
reads them through `edgekit.formats.registry.refusals` without importing any framework.
"""

from edgekit.formats.base import KERAS_CHANNELS_LAST, Format, Refusal, Writer

_TORCH_QAT_IO = ("LiteRT-Torch gives a quantization-aware torch model int8 inputs and outputs; "
                 "use io: int8")

FORMAT = Format(
    name="tflite", suffix=".tflite", runtimes=("litert", "tflm"),
    description="LiteRT (TensorFlow Lite) flatbuffer, for Android, iOS and embedded Linux",
    writers={
        "keras": Writer(
            "edgekit.formats.tflite.keras:write", layout="nhwc",
            refusals=(KERAS_CHANNELS_LAST,)),
        "torch": Writer(
            "edgekit.formats.tflite.torch:write", layout="nchw", channels_last_layout="nhwc",
            refusals=(
                Refusal("export.sparse", "export.sparse: true",
                        "LiteRT-Torch has no sparse weight encoding; remove export.sparse"),
                Refusal("qat.io.float32", "io: float32", f"{_TORCH_QAT_IO}, or method: ptq for float32 I/O"),
                Refusal("qat.io.uint8", "io: uint8", _TORCH_QAT_IO),
            )),
    },
    exporter="edgekit.formats.tflite.export:export",
    reader="edgekit.formats.tflite.reader",
    inspector="edgekit.formats.tflite.inspect:read_tflite",
    gpu_check="edgekit.formats.tflite.gpu:gpu_delegate",
    diagnose="edgekit.formats.tflite.diagnose:diagnose",
)
