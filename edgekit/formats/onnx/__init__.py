"""The .onnx format (ONNX protobuf, run by ONNX Runtime)."""

from edgekit.formats.base import Format

FORMAT = Format(name="onnx", suffix=".onnx", runtimes=("onnxruntime",),
                description="ONNX protobuf (weights above 1 GiB in <name>.onnx.data), for ONNX Runtime")
