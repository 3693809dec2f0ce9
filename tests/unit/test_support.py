"""edgekit.recipe.support: what this version implements, checked before anything is loaded or trained."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from edgekit.recipe import support

from edgekit.errors import RecipeError
from edgekit.recipe import load_recipe
from edgekit.recipe.support import check_support, teacher_framework
from tests.helpers import support_refusal

REPO = Path(__file__).resolve().parents[2]


def recipe_file(tmp_path: Path, body: str, teacher: str = "teacher:\n  path: model.keras\n", name="recipe.yaml"):
    path = tmp_path / name
    path.write_text("version: 1\n" + teacher + textwrap.dedent(body), encoding="utf-8")
    return load_recipe(path)


@pytest.mark.parametrize(
    ("path", "framework"),
    [
        ("model.keras", "keras"),
        ("model.h5", "keras"),
        ("model.hdf5", "keras"),
        ("MODEL.KERAS", "keras"),
        ("exported/saved_model", "keras"),  # a SavedModel directory has no suffix
        ("model.pt2", "torch"),
        ("model.pt", "torch"),
        ("model.ts", "torch"),
        ("model.pth", "torch"),
    ],
)
def test_framework_is_inferred_from_the_teacher_suffix(tmp_path, path, framework):
    recipe = recipe_file(tmp_path, "", teacher=f"teacher:\n  path: {path}\n")

    assert teacher_framework(recipe) == framework


def test_explicit_framework_wins_over_the_suffix(tmp_path):
    recipe = recipe_file(tmp_path, "", teacher="teacher:\n  path: weights.bin\n  framework: keras\n")

    assert teacher_framework(recipe) == "keras"


def test_built_teacher_is_keras(tmp_path):
    recipe = recipe_file(tmp_path, "", teacher="teacher:\n  build: {arch: mlp}\n")

    assert teacher_framework(recipe) == "keras"
    assert check_support(recipe) == "keras"


def test_unknown_suffix_is_an_error_naming_the_line_and_the_fix(tmp_path):
    recipe = recipe_file(tmp_path, "", teacher="teacher:\n  path: model.onnx\n")

    with pytest.raises(RecipeError) as excinfo:
        teacher_framework(recipe)

    message = str(excinfo.value)
    assert "model.onnx" in message
    assert f"{recipe.source} line 3, teacher.path" in message
    assert "teacher.framework" in message


def test_a_savedmodel_directory_with_a_dot_in_its_name_is_keras(tmp_path):
    saved = tmp_path / "digits.savedmodel"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    recipe = recipe_file(tmp_path, "", teacher="teacher:\n  path: digits.savedmodel\n")

    assert teacher_framework(recipe) == "keras"


@pytest.mark.parametrize("path", ["model.pt2", "model.pt", "model.ts"])
def test_torch_teachers_are_supported(tmp_path, path):
    recipe = recipe_file(tmp_path, "stages:\n  - distill: {}\n  - prune: {}\n  - quantize: {}\n",
                         teacher=f"teacher:\n  path: {path}\n")

    assert check_support(recipe) == "torch"


def test_a_framework_missing_from_the_table_is_rejected(tmp_path, monkeypatch):
    monkeypatch.delitem(support.IMPLEMENTED_STAGES, "torch")
    recipe = recipe_file(tmp_path, "", teacher="teacher:\n  path: model.pt2\n")

    message = support_refusal(recipe)

    assert str(recipe.source) in message and "line 2" in message
    assert "torch teachers are not supported" in message
    assert ".keras" in message  # how to fix it


def test_clustering_is_refused_for_torch_naming_the_stage(tmp_path):
    recipe = recipe_file(tmp_path, "stages:\n  - cluster: {}\n", teacher="teacher:\n  path: model.pt2\n")

    message = support_refusal(recipe)

    assert "the 'cluster' stage is not available for torch" in message and "stages[0]" in message


@pytest.mark.parametrize("body, key", [
    ("export:\n  sparse: true\n", "export.sparse"),
    ("stages:\n  - quantize: {method: qat, io: float32}\n", "stages[0].quantize.io"),
    ("stages:\n  - quantize: {method: qat, io: uint8}\n", "stages[0].quantize.io"),
])
def test_options_torch_cannot_produce_are_refused(tmp_path, body, key):
    recipe = recipe_file(tmp_path, body, teacher="teacher:\n  path: model.pt2\n")

    message = support_refusal(recipe)

    assert key in message and "not possible for torch teachers" in message


def test_channels_first_export_is_refused_for_keras(tmp_path):
    recipe = recipe_file(tmp_path, "export:\n  channels_last: false\n")

    message = support_refusal(recipe)

    assert "export.channels_last" in message and "channels-last" in message


@pytest.mark.parametrize("stage", [
    "- distill: {}\n", "- prune: {sparsity: 0.5}\n", "- prune: {structure: channels}\n",
    "- prune: {structure: '2:4'}\n", "- cluster: {}\n", "- quantize: {method: qat}\n",
])
def test_every_stage_is_available_for_keras(tmp_path, stage):
    recipe = recipe_file(tmp_path, "stages:\n  " + stage)

    assert check_support(recipe) == "keras"


def test_a_stage_missing_from_the_table_is_rejected_with_label_and_line(tmp_path, monkeypatch):
    monkeypatch.setitem(support.IMPLEMENTED_STAGES, "keras", {"quantize.ptq"})
    recipe = recipe_file(tmp_path, "stages:\n  - cluster: {}\n  - quantize: {}\n")

    message = support_refusal(recipe)

    assert "the 'cluster' stage is not available for keras" in message
    assert f"{recipe.source} line 5, stages[0]" in message
    assert "quantize.ptq" in message  # what is available


@pytest.mark.parametrize("precision", ["int8", "dynamic", "float16"])
def test_ptq_is_supported_for_keras(tmp_path, precision):
    recipe = recipe_file(tmp_path, f"stages:\n  - quantize: {{precision: {precision}}}\n")

    assert check_support(recipe) == "keras"


def test_sparse_export_is_accepted(tmp_path):
    recipe = recipe_file(tmp_path, "export:\n  sparse: true\n")

    assert check_support(recipe) == "keras"


def test_sparse_false_is_fine(tmp_path):
    recipe = recipe_file(tmp_path, "export:\n  sparse: false\n")

    assert check_support(recipe) == "keras"


def test_factory_with_a_keras_teacher_is_rejected(tmp_path):
    recipe = recipe_file(tmp_path, "", teacher="teacher:\n  path: model.keras\n  factory: pkg.mod:build\n")

    message = support_refusal(recipe)

    assert "teacher.factory applies to torch teachers only" in message
    assert "line 4, teacher.factory" in message


def test_quickstart_recipe_is_supported():
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml")

    assert check_support(recipe) == "keras"
    assert [s.label for s in recipe.stages] == ["quantize.ptq"]
    assert recipe.name == "quickstart"
