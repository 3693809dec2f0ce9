"""The stage registry: stage configuration classes register themselves, and the recipe's `stages:`
model, the support matrix, the progress summaries and the list of input files derive from them."""

from __future__ import annotations

from typing import ClassVar

import pytest

from edgekit.artifact import Artifact
from edgekit.recipe import STAGE_CONFIGS, ClusterConfig, DistillConfig, PruneConfig, QuantizeConfig, parse_recipe
from edgekit.recipe.support import IMPLEMENTED_STAGES
from edgekit.stages import frameworks, implementation, implemented_labels, run_stage
from edgekit.stages.base import StageConfig


def test_the_registry_holds_every_stage_in_pipeline_order():
    assert list(STAGE_CONFIGS) == ["distill", "prune", "cluster", "quantize"]
    assert STAGE_CONFIGS["quantize"] is QuantizeConfig and STAGE_CONFIGS["cluster"] is ClusterConfig


def test_the_support_matrix_is_derived_from_the_implementations():
    assert frameworks() == ("keras", "torch")
    assert IMPLEMENTED_STAGES == {
        "keras": {"quantize.ptq", "quantize.qat", "distill", "prune", "cluster"},
        "torch": {"quantize.ptq", "quantize.qat", "distill", "prune"},
    }
    assert implemented_labels("tflm") == {"quantize.ptq"}  # framework-independent: records the plan


def test_post_training_quantization_records_the_plan_without_a_framework():
    config = QuantizeConfig(precision="float16")
    artifact = Artifact("keras", model=object())

    class Context:
        class backend:
            framework = "keras"

    result = run_stage(artifact, config, Context())
    assert result.model is artifact.model and result.plan == config.plan() and artifact.plan is None
    assert result.history == ("quantize",)
    assert implementation("quantize.ptq", "keras").__module__ == "edgekit.stages.quantize"  # no backend


def test_an_unimplemented_stage_is_a_key_error():
    with pytest.raises(KeyError, match="no torch implementation of the 'cluster' stage"):
        implementation("cluster", "torch")


def test_summaries_say_what_each_stage_does():
    assert QuantizeConfig().summary() == "ptq int8 (io int8, per-channel)"
    assert QuantizeConfig(precision="dynamic", per_channel=False).summary() == "ptq dynamic (io float32, per-tensor)"
    assert DistillConfig().summary() == "student cnn_small (width 0.25), T=4, alpha=0.9, 10 epochs"
    assert DistillConfig(student={"path": "s.keras"}).summary() == "student s.keras, T=4, alpha=0.9, 10 epochs"
    assert PruneConfig(structure="2:4").summary() == "2:4 to 0.5, 3 epochs"
    assert ClusterConfig().summary() == "16 clusters, 1 epochs"


def test_named_files_include_what_stages_read():
    recipe = parse_recipe({"version": 1, "teacher": {"path": "t.keras"},
                           "data": {"source": "npz", "path": "d.npz", "labels": "l.txt"},
                           "stages": [{"prune": None}, {"distill": {"student": {"path": "s.keras"}}}, "quantize"]})
    assert recipe.named_files() == [
        (("teacher", "path"), "t.keras"), (("data", "path"), "d.npz"), (("data", "labels"), "l.txt"),
        (("stages", 1, "distill", "student", "path"), "s.keras"),
    ]


def test_two_stages_cannot_share_a_key():
    with pytest.raises(TypeError, match="two stages are named 'prune'"):
        class AnotherPrune(StageConfig):
            key: ClassVar[str] = "prune"
