"""Knowledge distillation: train a smaller student on the teacher's softened outputs."""

from __future__ import annotations

from typing import Annotated, ClassVar, Optional

from pydantic import Field, model_validator

from edgekit.config import Arch, CodeReference, Fraction, Strict
from edgekit.stages.base import FineTune


class StudentConfig(Strict):
    """The distillation student: a zoo architecture with a width multiplier, or a model file. A Keras
    file with custom layers names their module in `custom_objects` and is trusted with its own
    `trust_code` (the teacher's trust covers the teacher's file only)."""

    arch: Optional[Arch] = None
    width: Annotated[float, Field(gt=0.0, le=8.0)] = 1.0
    path: Optional[str] = None
    trust_code: bool = False
    custom_objects: Optional[CodeReference] = None

    @model_validator(mode="after")
    def _arch_or_path(self) -> "StudentConfig":
        if (self.arch is None) == (self.path is None):
            raise ValueError("distill.student needs either arch (with width) or path, e.g. {arch: cnn_small, width: 0.25}")
        if self.path is None and (self.custom_objects or self.trust_code):
            raise ValueError("distill.student.custom_objects and trust_code apply to a student loaded from path, "
                             "not to a zoo arch")
        return self


class DistillConfig(FineTune):
    key: ClassVar[str] = "distill"
    description: ClassVar[str] = "train a smaller student on the teacher's softened outputs"
    order: ClassVar[int] = 10
    implementations: ClassVar[dict[str, str]] = {
        "keras": "edgekit.backends.keras.distill:distill",
        "torch": "edgekit.backends.torch.distill:distill",
    }

    student: StudentConfig = Field(default_factory=lambda: StudentConfig(arch="cnn_small", width=0.25))
    temperature: Annotated[float, Field(gt=0.0)] = 4.0
    alpha: Fraction = 0.9
    epochs: Annotated[int, Field(gt=0)] = 10

    def files(self) -> list[tuple[tuple[str, ...], str]]:
        return [(("student", "path"), self.student.path)] if self.student.path else []

    def summary(self) -> str:
        student = self.student
        who = student.path or f"{student.arch} (width {student.width:g})"
        return f"student {who}, T={self.temperature:g}, alpha={self.alpha:g}, {self.epochs} epochs"
