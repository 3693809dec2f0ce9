"""The stage registry: `(artifact, config, context) -> new artifact`, keyed by `Stage.label`.

Post-training quantization changes no weights: it records the quantization plan on the artifact,
and the exporters apply it (the TFLite converter for .tflite, ONNX Runtime for .onnx). Training
stages (distill, prune, cluster, qat) call the backend, which trains a copy.
"""

from __future__ import annotations

from typing import Callable

from .artifact import Artifact


def quantize_ptq(artifact: Artifact, config, context) -> Artifact:
    return artifact.evolve("quantize", quantization=config)


STAGES: dict[str, Callable] = {
    "quantize.ptq": quantize_ptq,
}
