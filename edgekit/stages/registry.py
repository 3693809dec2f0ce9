"""The stage registry: every StageConfig subclass in this package, and how a stage runs.

Each module of edgekit.stages (other than this one and `base`) defines one stage's configuration
class, which registers itself on import (edgekit.stages.base). Nothing here imports a framework:
a stage's implementation is a "module:function" string, imported when the stage runs.

    >>> sorted(implemented_labels("torch"))
    ['distill', 'prune', 'quantize.ptq', 'quantize.qat']
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Callable

from edgekit.artifact import Artifact
from edgekit.stages.base import ANY_FRAMEWORK, Method, StageConfig, registered

_PACKAGE = __name__.rpartition(".")[0]
_NOT_STAGES = {"base", "registry"}
for _module in pkgutil.iter_modules([str(Path(__file__).parent)]):
    if _module.name not in _NOT_STAGES:
        importlib.import_module(f"{_PACKAGE}.{_module.name}")

STAGE_CONFIGS: dict[str, type[StageConfig]] = registered()
"""stage key (the recipe's `stages:` entry) -> configuration class, in pipeline order."""


def methods() -> dict[str, Method]:
    """Every method of every stage, by label (`distill`, `quantize.ptq`, ...)."""
    return {label: method for cls in STAGE_CONFIGS.values() for label, method in cls.methods.items()}


def frameworks() -> tuple[str, ...]:
    """The frameworks some stage implementation names (without importing edgekit.backends, which
    loads numpy: `edgekit validate` stays instant)."""
    named = {fw for method in methods().values() for fw in method.implementations if fw != ANY_FRAMEWORK}
    return tuple(sorted(named))


def implemented_labels(framework: str) -> set[str]:
    """The stage labels that `framework` can run."""
    return {label for label, method in methods().items() if method.target(framework)}


def implementation(label: str, framework: str) -> Callable[[Artifact, StageConfig, object], Artifact]:
    """The function running stage `label` for `framework`, imported now (this may import the framework)."""
    target = methods()[label].target(framework)
    if target is None:
        raise KeyError(f"no {framework} implementation of the '{label}' stage")
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def run_stage(artifact: Artifact, config: StageConfig, context) -> Artifact:
    """Run the stage `config` configures on `artifact` with the context's framework: a new artifact."""
    return implementation(config.label, context.backend.framework)(artifact, config, context)
