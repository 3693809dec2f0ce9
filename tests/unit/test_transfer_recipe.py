"""teacher.build's transfer-learning keys (issue 11, point 6) at validation, without TF or torch:
the schema, which framework builds which arch (support.ARCH_PACKAGES), and the weights file."""

from __future__ import annotations

import importlib.util

import pytest

from edgekit.errors import EdgekitError, RecipeError
from edgekit.recipe import load_recipe, parse_recipe
from edgekit.recipe import support
from edgekit.run.validation import check_files
from tests.helpers import support_refusal


def recipe(build: dict, framework: str = "keras", train: dict | None = None, stages: list | None = None):
    teacher = {"build": build, "framework": framework, **({"train": train} if train else {})}
    return parse_recipe({"version": 1, "teacher": teacher, "stages": stages or []})


def refusal(build: dict, **kwargs) -> str:
    with pytest.raises(RecipeError) as refused:
        recipe(build, **kwargs)
    assert refused.value.exit_code == 2
    return str(refused.value)


def test_a_full_transfer_recipe_parses():
    parsed = recipe({"arch": "mobilenet_v2", "width": 0.35, "weights": "base.h5", "freeze": "base",
                     "head": {"dropout": 0.3, "dense": [128]}},
                    train={"epochs": 3, "fine_tune": {"epochs": 2, "learning_rate": 1e-5}})
    build = parsed.teacher.build
    assert build.head.spec().dense == (128,) and build.head.spec().dropout == 0.3
    assert parsed.teacher.train.fine_tune.epochs == 2
    assert (("teacher", "build", "weights"), "base.h5") in parsed.named_files()


def test_freeze_needs_weights():
    assert "needs teacher.build.weights" in refusal({"arch": "mobilenet_v2", "freeze": "base"})


def test_fine_tune_needs_a_frozen_base():
    message = refusal({"arch": "mobilenet_v2", "weights": "base.h5"}, train={"fine_tune": {}})
    assert "teacher.train.fine_tune" in message and "freeze: base" in message


@pytest.mark.parametrize("key, value", [("weights", "base.h5"), ("head", {"dense": [8]}), ("freeze", "base")])
def test_transfer_keys_need_an_arch_with_a_base(key, value):
    message = refusal({"arch": "cnn_small", key: value, **({"weights": "w.h5"} if key == "freeze" else {})})
    assert "teacher.build." in message and "cnn_small" in message and "mobilenet_v2" in message


def test_archs_without_a_width_refuse_one():
    assert "resnet50 has one width" in refusal({"arch": "resnet50", "width": 0.5})


def test_a_head_key_that_does_not_exist_is_refused():
    assert "units" in refusal({"arch": "mobilenet_v2", "head": {"units": 3}})


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
@pytest.mark.parametrize("arch", ["resnet50", "efficientnet_b0"])
def test_torchvision_archs_are_refused_for_torch_without_it(arch):
    message = support_refusal(recipe({"arch": arch}, framework="torch"))
    assert "teacher.build.arch" in message and "torchvision" in message and arch in message


def test_a_distill_student_arch_is_checked_too():
    parsed = recipe({"arch": "mobilenet_v2"}, framework="torch",
                    stages=[{"distill": {"student": {"arch": "resnet50"}}}])
    if importlib.util.find_spec("torchvision") is None:
        assert "stages[0].distill.student.arch" in support_refusal(parsed)


def test_an_arch_a_framework_lacks_is_refused(monkeypatch):
    monkeypatch.setitem(support.ARCH_PACKAGES, "mobilenet_v2", {"keras": None})
    message = support_refusal(recipe({"arch": "mobilenet_v2"}, framework="torch"))
    assert "teacher.build.arch" in message and "cannot be built for torch" in message


def test_keras_builds_every_base_arch():
    for arch in ("mobilenet_v2", "resnet50", "efficientnet_b0"):
        assert support.check_support(recipe({"arch": arch})) == "keras"


def test_a_missing_weights_file_names_the_key(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("version: 1\nteacher:\n  build: {arch: mobilenet_v2, weights: nowhere.h5, freeze: base}\n")
    with pytest.raises(EdgekitError) as refused:
        check_files(load_recipe(path))
    assert refused.value.exit_code == 2 and "teacher.build.weights" in str(refused.value)
    assert "nowhere.h5" in str(refused.value)
