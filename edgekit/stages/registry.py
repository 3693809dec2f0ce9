"""The stage registry: `(artifact, config, context) -> new artifact`, keyed by `Stage.label`.

Post-training quantization changes no weights: it records the quantization plan on the artifact,
and the exporters apply it (the TFLite converter for .tflite, ONNX Runtime for .onnx). Training
stages (distill, prune, cluster, quantize.qat) are implemented by each backend, which trains a copy
and never changes the model it was given.
"""

from __future__ import annotations

from typing import Callable

from edgekit.artifact import Artifact


def quantize_ptq(artifact: Artifact, config, context) -> Artifact:
    return artifact.evolve("quantize", plan=config.plan())


def _backend_stage(label: str) -> Callable:
    def run(artifact: Artifact, config, context) -> Artifact:
        return context.backend.STAGES[label](artifact, config, context)

    run.__name__ = label.replace(".", "_")
    return run


STAGES: dict[str, Callable] = {
    "quantize.ptq": quantize_ptq,
    **{label: _backend_stage(label) for label in ("distill", "prune", "cluster", "quantize.qat")},
}
