"""The .tflite format (LiteRT flatbuffers)."""

from edgekit.formats.base import Format

FORMAT = Format(name="tflite", suffix=".tflite", runtimes=("litert",),
                description="LiteRT (TensorFlow Lite) flatbuffer, for Android, iOS and embedded Linux")
