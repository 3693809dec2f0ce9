"""edgekit: compress Keras and PyTorch classifiers into verified int8 .tflite and .onnx files.

Importing this package is cheap: TensorFlow, torch and the runtimes are imported only
inside the backends and runtimes that need them, so `edgekit --help` answers instantly.
"""

__version__ = "0.1.0"
