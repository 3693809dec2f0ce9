"""The model handed between stages.

An Artifact is immutable: a stage returns a new one (`artifact.evolve(...)`) and never changes the
model object it was given. `model` is the in-memory framework object (a tf_keras Model, an
nn.Module); `plan` is the precision plan the exporters realize (post-training quantization is
applied at conversion time); `history` lists the stages that made it, for the report. What earlier
stages did that later ones and the exporters depend on is typed state: `pruned`, `clustered`, `qat`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional

from edgekit.precision import Plan


@dataclass(frozen=True)
class QuantizationAware:
    """What a quantization-aware model carries for its exporters, beside the model itself.

    `float_model`: the fine-tuned float weights, for a format whose exporter quantizes a float model
    itself (torch: ONNX Runtime quantizes them with the calibration samples). `quantizer`: the
    framework's quantizer object the model was trained with (torch: the PT2E quantizer LiteRT-Torch
    converts with). Either may be None when the framework needs nothing beyond the model."""

    float_model: Any = None
    quantizer: Any = None


@dataclass(frozen=True)
class Artifact:
    framework: str
    model: Any
    name: str = "teacher"
    plan: Optional[Plan] = None
    history: tuple[str, ...] = ()
    source: Optional[str] = None  # the teacher's file, or "zoo:<arch>"
    pruned: Optional[str] = None  # the prune structure applied: unstructured | 2:4 | channels
    clustered: Optional[int] = None  # clusters per weight tensor
    qat: Optional[QuantizationAware] = None  # set by quantization-aware training
    details: Mapping[str, Any] = field(default_factory=dict)  # what the last stage reports

    def evolve(self, stage: str, **changes: Any) -> "Artifact":
        """A new artifact made by `stage` from this one."""
        return replace(self, name=stage, history=self.history + (stage,), **changes)
