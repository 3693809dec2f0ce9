"""What a stage is: one configuration class that registers itself.

A stage's configuration class carries, as class data, everything the rest of edgekit needs to know
about the stage: its recipe key, a description, where each framework implements it (as
"module:function" strings, imported only when the stage runs), the artifact state it sets, the
files it reads and the one-line summary shown while it runs. The recipe's `stages:` model, the
support matrix and the pipeline are all derived from these classes (edgekit.stages.registry).

    class PruneConfig(FineTune):
        key: ClassVar[str] = "prune"
        description: ClassVar[str] = "zero weights ..."
        implementations: ClassVar[dict] = {"keras": "edgekit.backends.keras.prune:prune", ...}
        produces: ClassVar[tuple] = ("pruned",)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Mapping, Optional

from pydantic import Field, model_validator

from edgekit.config import Strict

ANY_FRAMEWORK = "*"
"""An implementation that works for every framework (it changes no weights)."""


@dataclass(frozen=True)
class Method:
    """One way a stage runs, named by its label (`prune`, `quantize.qat`).

    `implementations`: framework (or ANY_FRAMEWORK) -> "module:function", a function
    `(artifact, config, context) -> new artifact`. `produces`: the Artifact fields it sets with
    its default options (channel pruning, for one, leaves `pruned` unset: its model is dense).
    `options`: the configuration keys that select this method (`{"method": "qat"}`)."""

    implementations: Mapping[str, str]
    produces: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    def target(self, framework: str) -> str | None:
        """The "module:function" implementing this method for `framework`, or None."""
        return self.implementations.get(framework, self.implementations.get(ANY_FRAMEWORK))


_REGISTERED: dict[str, type["StageConfig"]] = {}


class StageConfig(Strict):
    """Base of every stage's configuration. A subclass that sets `key` registers itself.

    Single-method stages declare `implementations` and `produces`; a stage with several methods
    (quantize: ptq, qat) declares `methods` and overrides `label`."""

    key: ClassVar[str] = ""
    description: ClassVar[str] = ""
    order: ClassVar[int] = 50  # where the stage sits in listings (the usual order of a pipeline)
    implementations: ClassVar[Mapping[str, str]] = {}
    produces: ClassVar[tuple[str, ...]] = ()
    methods: ClassVar[Mapping[str, Method]] = {}
    layer_refusals: ClassVar[Mapping[str, Mapping[str, Mapping[str, str]]]] = {}
    """Layers a variant of this stage cannot take: variant (a `refusal_key` prefix) -> framework (or
    ANY_FRAMEWORK) -> {layer kind (edgekit.zoo.LAYER_KINDS): why, and what to do instead}. Validation
    refuses a recipe whose model holds such a layer when the stage reaches it, before any training."""
    compute_refusals: ClassVar[Mapping[str, Mapping[str, Mapping[str, str]]]] = {}
    """Compute this variant cannot train with: variant (a `refusal_key` prefix) -> framework (or
    ANY_FRAMEWORK) -> {`compute.precision` value: why, and what to do instead}. Validation refuses it."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "key" not in cls.__dict__:
            return
        if cls.key in _REGISTERED and _REGISTERED[cls.key].__qualname__ != cls.__qualname__:
            raise TypeError(f"two stages are named '{cls.key}': {_REGISTERED[cls.key]} and {cls}")
        if "methods" not in cls.__dict__:
            cls.methods = {cls.key: Method(dict(cls.implementations), tuple(cls.produces))}
        _REGISTERED[cls.key] = cls

    @property
    def label(self) -> str:
        """The method this configuration selects (a key of `methods`), as the support matrix names it."""
        return self.key

    @property
    def refusal_key(self) -> str:
        """This configuration's variant, dotted from general to specific (the label, then options:
        `prune.channels`, `quantize.ptq.int8.int8`); a `layer_refusals` key applies to it and to
        every variant it is a dotted prefix of."""
        return self.label

    def refused_layers(self, framework: str) -> dict[str, str]:
        """{layer kind: why, and what to do instead} for the layers this configuration refuses."""
        return self._refused(self.layer_refusals, framework)

    def refused_precisions(self, framework: str) -> dict[str, str]:
        """{compute.precision value: why} for the training precisions this configuration refuses."""
        return self._refused(self.compute_refusals, framework)

    def _refused(self, refusals: Mapping[str, Mapping[str, Mapping[str, str]]], framework: str) -> dict[str, str]:
        """What `refusals` (variant -> framework -> {value: why}) holds for this variant and its prefixes."""
        found: dict[str, str] = {}
        for key, table in refusals.items():
            if self.refusal_key == key or self.refusal_key.startswith(key + "."):
                found.update({**table.get(ANY_FRAMEWORK, {}), **table.get(framework, {})})
        return found

    def check_layers(self, names: list[str]) -> None:
        """ValueError when the configuration names layers (by pattern) that `names`, the model's
        layers with weights, do not have; the preflight calls it before anything trains."""

    def files(self) -> list[tuple[tuple[str, ...], str]]:
        """Files this stage reads: (key path inside the stage, value as written in the recipe)."""
        return []

    def summary(self) -> str:
        """One line saying what this configuration does, shown while the stage runs and in the report."""
        return self.description


class FineTune(StageConfig):
    """Training settings shared by the stages that train (defaults depend on the stage)."""

    epochs: Annotated[int, Field(gt=0)] = 3
    batch_size: Optional[Annotated[int, Field(gt=0)]] = None
    learning_rate: Optional[Annotated[float, Field(gt=0.0)]] = None

    DEFAULT_LEARNING_RATE: ClassVar[float] = 1e-3

    @model_validator(mode="after")
    def _defaults(self) -> "FineTune":
        if self.batch_size is None:
            self.batch_size = 32
        if self.learning_rate is None:
            self.learning_rate = self.DEFAULT_LEARNING_RATE
        return self


def registered() -> dict[str, type[StageConfig]]:
    """The stage classes imported so far, by key, in pipeline order."""
    return dict(sorted(_REGISTERED.items(), key=lambda item: item[1].order))
