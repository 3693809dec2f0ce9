"""The .onnx format (ONNX protobuf, run by ONNX Runtime): its writers per framework.

Writers give float files; a quantized .onnx is made by ONNX Runtime from the float one
(`edgekit.formats.onnx.export`), so its inputs and outputs stay float32 whatever the plan.
"""

from edgekit.formats.base import KERAS_CHANNELS_LAST, Format, Writer

FORMAT = Format(
    name="onnx", suffix=".onnx", runtimes=("onnxruntime",),
    description="ONNX protobuf (weights above 1 GiB in <name>.onnx.data), for ONNX Runtime",
    writers={
        "keras": Writer(
            "edgekit.formats.onnx.keras:write", layout="nhwc",
            refusals=(KERAS_CHANNELS_LAST,)),
        "torch": Writer("edgekit.formats.onnx.torch:write", layout="nchw"),
    },
    exporter="edgekit.formats.onnx.export:export",
    reader="edgekit.formats.onnx.reader",
    inspector="edgekit.formats.onnx.inspect:read_onnx",
    diagnose="edgekit.formats.onnx.diagnose:diagnose",
    float_io=True,
)
