"""The recipe (v1), the public contract of DESIGN.md: its pydantic models and how a file is read.

    >>> recipe = load_recipe("recipes/quickstart.yaml", overrides=["gates.min_accuracy=0.9"])
    >>> recipe.stages[0].kind
    'quantize'
"""

from edgekit.recipe.loading import apply_override, load_recipe, parse_recipe, resolved_yaml, set_value
from edgekit.config import ARCHS
from edgekit.recipe.models import (
    STAGE_CONFIGS,
    BuildConfig,
    ComputeConfig,
    DataConfig,
    DataKeys,
    EvaluateConfig,
    ExportConfig,
    GatesConfig,
    HeadConfig,
    LatencyConfig,
    Recipe,
    Stage,
    TeacherConfig,
    TeacherFineTune,
    TrainConfig,
)
from edgekit.stages.base import FineTune
from edgekit.stages.cluster import ClusterConfig
from edgekit.stages.distill import DistillConfig, StudentConfig
from edgekit.stages.prune import PruneConfig
from edgekit.stages.quantize import QuantizeConfig

__all__ = [
    "ARCHS", "STAGE_CONFIGS", "BuildConfig",
    "ComputeConfig", "ClusterConfig", "DataConfig", "DataKeys",
    "DistillConfig", "EvaluateConfig", "ExportConfig", "FineTune", "GatesConfig", "HeadConfig", "LatencyConfig", "PruneConfig",
    "QuantizeConfig", "Recipe", "Stage", "StudentConfig", "TeacherConfig", "TeacherFineTune", "TrainConfig",
    "apply_override", "load_recipe", "parse_recipe", "resolved_yaml", "set_value",
]
