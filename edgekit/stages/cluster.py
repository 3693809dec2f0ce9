"""Weight clustering: share a few values per weight tensor, keeping the zeros of a pruned model."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from edgekit.stages.base import FineTune


class ClusterConfig(FineTune):
    key: ClassVar[str] = "cluster"
    description: ClassVar[str] = "share a few values per weight tensor (keeping a pruned model's zeros), then fine-tune"
    order: ClassVar[int] = 30
    implementations: ClassVar[dict[str, str]] = {"keras": "edgekit.backends.keras.cluster:cluster"}
    produces: ClassVar[tuple[str, ...]] = ("clustered",)

    clusters: Annotated[int, Field(ge=2, le=256)] = 16
    epochs: Annotated[int, Field(gt=0)] = 1

    DEFAULT_LEARNING_RATE: ClassVar[float] = 1e-4

    def summary(self) -> str:
        return f"{self.clusters} clusters, {self.epochs} epochs"
