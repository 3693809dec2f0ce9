"""Stages: what is done to a model, `(artifact, config, context) -> new artifact`.

A stage is one configuration class in a module of this package (see edgekit.stages.base); the
registry (edgekit.stages.registry) finds them and runs their implementations.
"""

from edgekit.stages.registry import STAGE_CONFIGS, frameworks, implementation, implemented_labels, methods, run_stage

__all__ = ["STAGE_CONFIGS", "frameworks", "implementation", "implemented_labels", "methods", "run_stage"]
