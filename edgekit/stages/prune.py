"""Pruning: zero weights (unstructured, 2:4) or remove whole channels, fine-tuning as it goes."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from edgekit.stages.base import ANY_FRAMEWORK, FineTune

_NARROWER = ("Use structure: unstructured (or 2:4), which prunes {what} weights in place, or distill into a "
             "narrower student (distill: {{student: {{arch: ..., width: 0.5}}}}) for a smaller dense model.")


class PruneConfig(FineTune):
    key: ClassVar[str] = "prune"
    description: ClassVar[str] = "zero weights (unstructured or 2:4) or remove channels, then fine-tune"
    order: ClassVar[int] = 20
    implementations: ClassVar[dict[str, str]] = {
        "keras": "edgekit.backends.keras.prune:prune",
        "torch": "edgekit.backends.torch.prune:prune",
    }
    produces: ClassVar[tuple[str, ...]] = ("pruned",)
    layer_refusals: ClassVar[dict] = {"prune.channels": {ANY_FRAMEWORK: {
        "attention": "removing channels would have to keep every head's query, key and value widths and the "
                     "residual stream in step, which edgekit's channel pruning does not do. "
                     + _NARROWER.format(what="the attention"),
        "lstm": "an LSTM's four gates share each unit across its kernel and recurrent kernel, which channel "
                "pruning does not rebuild. " + _NARROWER.format(what="the LSTM"),
        "gru": "a GRU's three gates share each unit across its kernel and recurrent kernel, which channel "
               "pruning does not rebuild. " + _NARROWER.format(what="the GRU"),
    }}}

    sparsity: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    structure: Literal["unstructured", "2:4", "channels"] = "unstructured"
    schedule: Literal["polynomial", "constant"] = "polynomial"
    initial_sparsity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @model_validator(mode="after")
    def _structure_options(self) -> "PruneConfig":
        if self.structure == "2:4" and abs(self.sparsity - 0.5) > 1e-9:
            raise ValueError("structure '2:4' keeps 2 of every 4 weights, so its sparsity is 0.5; remove sparsity")
        if self.structure != "unstructured" and (self.schedule != "polynomial" or self.initial_sparsity):
            raise ValueError(f"schedule and initial_sparsity apply to structure: unstructured, not '{self.structure}'")
        if self.initial_sparsity and self.schedule != "polynomial":
            raise ValueError("initial_sparsity applies to schedule: polynomial")
        if self.initial_sparsity >= self.sparsity:
            raise ValueError(f"initial_sparsity ({self.initial_sparsity}) must be below sparsity ({self.sparsity})")
        return self

    @property
    def refusal_key(self) -> str:
        """`prune.channels` etc.: which layers pruning can take depends on the structure."""
        return f"prune.{self.structure}"

    def summary(self) -> str:
        return f"{self.structure} to {self.sparsity:g}, {self.epochs} epochs"
