"""Shipped file formats (.tflite, .onnx): how each is written, quantized, read, inspected and run."""
