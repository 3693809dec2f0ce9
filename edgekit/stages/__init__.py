"""Stages: what is done to a model, `(artifact, config, context) -> new artifact`."""

from edgekit.stages.registry import STAGES

__all__ = ["STAGES"]
