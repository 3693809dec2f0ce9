"""The model handed between stages.

An Artifact is immutable: a stage returns a new one (`artifact.evolve(...)`) and never changes the
model object it was given. `model` is the in-memory framework object (a tf_keras Model, later an
nn.Module); `quantization` is the plan the exporters honour (post-training quantization is applied at
conversion time); `history` lists the stages that made it, for the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional


@dataclass(frozen=True)
class Artifact:
    framework: str
    model: Any
    name: str = "teacher"
    quantization: Optional[Any] = None  # a recipe.QuantizeConfig once a quantize stage ran
    history: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)

    def evolve(self, stage: str, **changes: Any) -> "Artifact":
        """A new artifact made by `stage` from this one."""
        return replace(self, name=stage, history=self.history + (stage,), **changes)
