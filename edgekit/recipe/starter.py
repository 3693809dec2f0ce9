"""The starter recipes `edgekit init` writes: commented, and runnable as written anywhere.

They train a small zoo teacher on scikit-learn's bundled digits (no download, no model file needed),
quantize it to int8 and gate the result, so a new user sees a whole run before adapting the keys.
"""

from __future__ import annotations

_TEMPLATE = """\
# edgekit recipe (v1), written by `edgekit init --framework {framework}`.
# Runs as written: `edgekit compress {filename}`. Every key: recipes/README.md in edgekit's repository.
version: 1
name: my-model                 # outputs go to runs/<name>/ (or --output DIR)
seed: 0
task: classification           # classification | regression

data:
  source: digits               # digits (bundled, offline) | npz | image_folder | keras
  # path: data/my_data.npz     # npz: arrays x_train, y_train, x_test, y_test (rename with keys:)
  scale: 0.0625                # preprocessing x * scale + offset, as the model was trained (digits: 0..16 -> 0..1)
  offset: 0.0
  layout: nhwc                 # layout of the stored arrays: nhwc | nchw
  calibration_samples: 256     # training samples that calibrate int8 quantization

teacher:
  # Load your model instead of training one:
  # path: {example_path}
  framework: {framework}
  build: {{arch: cnn_small, width: 0.5}}   # mlp | cnn_tiny | cnn_small | ds_cnn | resnet8 | mobilenet_v1
  #                                         | transformer | lstm | gru
  train: {{epochs: 10, batch_size: 32, learning_rate: 0.001}}

stages:                        # applied in order, each on the previous stage's model
  # - distill: {{student: {{arch: cnn_small, width: 0.25}}, temperature: 4.0, alpha: 0.9, epochs: 10}}
  # - prune: {{sparsity: 0.5, structure: unstructured, epochs: 3}}   # unstructured | 2:4 | channels
  - quantize:
      method: ptq              # ptq | qat
      precision: int8          # int8 | dynamic | float16
      io: int8                 # int8 | uint8 | float32: the .tflite's input/output type

export:
  formats: [tflite, onnx]

evaluate:
  latency: {{warmup: 10, runs: 100, threads: 1, batch: 1}}

gates:                         # a failed gate makes `edgekit compress` exit 1 (artifacts still written)
  max_accuracy_drop: 0.02      # against the teacher, measured on LiteRT / ONNX Runtime
  min_accuracy: 0.90
  max_size: 200KB
"""

EXAMPLE_PATHS = {"keras": "models/my_model.keras", "torch": "models/my_model.pt2"}


def starter_recipe(framework: str, filename: str) -> str:
    """The commented starter recipe for `framework` ("keras" | "torch")."""
    return _TEMPLATE.format(framework=framework, filename=filename, example_path=EXAMPLE_PATHS[framework])
