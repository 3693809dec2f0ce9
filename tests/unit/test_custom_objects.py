"""`custom_objects` (Keras custom layers) in the recipe, without a framework: its shape, the trust it
needs, where its module is looked up (edgekit.usercode) and its part of the stage cache's key."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from edgekit import usercode
from edgekit.errors import InputError, RecipeError
from edgekit.recipe import load_recipe
from edgekit.recipe.support import check_support
from edgekit.run.reuse import teacher_key
from edgekit.run.validation import check_files
from tests.helpers import support_refusal


def recipe_at(folder: Path, teacher: str, stages: str = ""):
    """A recipe in `folder` whose teacher mapping is `teacher` (flow YAML), with a model file beside it."""
    (folder / "model.keras").write_bytes(b"PK\x03\x04")
    (folder / "student.keras").write_bytes(b"PK\x03\x04")
    path = folder / "recipe.yaml"
    path.write_text(f"version: 1\nteacher: {teacher}\n" + textwrap.dedent(stages), encoding="utf-8")
    return load_recipe(path)


# ---- the recipe ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["my_layers", "pkg.my_layers", "my_layers:CUSTOM_OBJECTS", "pkg.m:ns.OBJECTS"])
def test_a_module_or_module_dict_is_accepted(tmp_path, value):
    recipe = recipe_at(tmp_path, f"{{path: model.keras, custom_objects: '{value}', trust_code: true}}")

    assert recipe.teacher.custom_objects == value
    assert check_support(recipe) == "keras"


@pytest.mark.parametrize("value", ["my layers", "a:b:c", "1abc", "pkg.:x", "mod:"])
def test_a_malformed_value_names_the_key_and_the_form(tmp_path, value):
    with pytest.raises(RecipeError) as info:
        recipe_at(tmp_path, f"{{path: model.keras, custom_objects: '{value}', trust_code: true}}")

    message = str(info.value)
    assert "line 2: teacher.custom_objects" in message and "not a Python module name" in message
    assert "layers:CUSTOM_OBJECTS" in message  # the form that would work


def test_custom_objects_without_trust_code_is_refused_naming_the_line_and_the_fix(tmp_path):
    recipe = recipe_at(tmp_path, "{path: model.keras, custom_objects: my_layers}")

    message = support_refusal(recipe)

    assert f"{recipe.source} line 2, teacher.custom_objects" in message
    assert "'my_layers' runs its code" in message and "teacher.trust_code: true" in message


def test_custom_objects_is_keras_only(tmp_path):
    recipe = recipe_at(tmp_path, "{path: model.pt2, custom_objects: my_layers, trust_code: true}")

    message = support_refusal(recipe)

    assert "teacher.custom_objects" in message and "not possible for torch teachers" in message


def test_a_student_takes_its_own_custom_objects_and_trust(tmp_path):
    stages = "stages:\n  - distill:\n      student: {path: student.keras, custom_objects: s_layers, trust_code: true}\n"
    recipe = recipe_at(tmp_path, "{path: model.keras}", stages)

    assert check_support(recipe) == "keras"
    assert recipe.stages[0].distill.student.custom_objects == "s_layers"


def test_the_teachers_trust_does_not_cover_a_student(tmp_path):
    stages = "stages:\n  - distill:\n      student: {path: student.keras, custom_objects: s_layers}\n"
    recipe = recipe_at(tmp_path, "{path: model.keras, trust_code: true}", stages)

    message = support_refusal(recipe)

    assert f"{recipe.source} line 5, stages[0].distill.student.custom_objects" in message
    assert "stages[0].distill.student.trust_code: true" in message


def test_a_torch_student_refuses_custom_objects(tmp_path):
    stages = "stages:\n  - distill:\n      student: {path: student.pt2, custom_objects: s_layers, trust_code: true}\n"
    recipe = recipe_at(tmp_path, "{path: model.pt2}", stages)

    message = support_refusal(recipe)

    assert "stages[0].distill.student" in message and "not possible for torch teachers" in message


def test_a_zoo_student_takes_no_custom_objects(tmp_path):
    stages = "stages:\n  - distill:\n      student: {arch: mlp, custom_objects: s_layers, trust_code: true}\n"
    with pytest.raises(RecipeError, match="apply to a student loaded from path"):
        recipe_at(tmp_path, "{path: model.keras}", stages)


# ---- finding the module (validate: nothing imported) -----------------------------------------

EXPLOSIVE = "raise RuntimeError('imported!')\n"  # a module whose import would show


def test_the_module_is_found_beside_the_model_without_importing_it(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    (models / "beside_layers_x1.py").write_text(EXPLOSIVE)
    recipe = recipe_at(tmp_path, "{path: models/model.keras, custom_objects: beside_layers_x1, trust_code: true}")
    (models / "model.keras").write_bytes(b"PK\x03\x04")
    monkeypatch.chdir(tmp_path)

    check_files(recipe)

    assert "beside_layers_x1" not in sys.modules


def test_a_package_module_is_found_without_running_the_package(tmp_path, monkeypatch):
    package = tmp_path / "pkg_x2"
    package.mkdir()
    (package / "__init__.py").write_text(EXPLOSIVE)
    (package / "layers.py").write_text(EXPLOSIVE)
    recipe = recipe_at(tmp_path, "{path: model.keras, custom_objects: 'pkg_x2.layers:OBJECTS', trust_code: true}")

    check_files(recipe)

    assert usercode.locate("pkg_x2.layers", tmp_path) == str(package / "layers.py")
    assert "pkg_x2" not in sys.modules and "pkg_x2.layers" not in sys.modules


def test_the_working_directory_then_sys_path_are_searched(tmp_path, monkeypatch):
    work, elsewhere, models = tmp_path / "work", tmp_path / "site", tmp_path / "models"
    for folder in (work, elsewhere, models):
        folder.mkdir()
    (work / "cwd_layers_x3.py").write_text(EXPLOSIVE)
    (elsewhere / "path_layers_x3.py").write_text(EXPLOSIVE)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(elsewhere))

    assert usercode.locate("cwd_layers_x3", models) == str(work / "cwd_layers_x3.py")
    assert usercode.locate("path_layers_x3", models) == str(elsewhere / "path_layers_x3.py")
    (models / "cwd_layers_x3.py").write_text(EXPLOSIVE)
    assert usercode.locate("cwd_layers_x3", models) == str(models / "cwd_layers_x3.py")  # beside wins


def test_a_module_that_cannot_be_found_names_the_key_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = recipe_at(tmp_path, "{path: model.keras, custom_objects: 'nowhere_x4:OBJECTS', trust_code: true}")

    with pytest.raises(InputError) as info:
        check_files(recipe)

    message = str(info.value)
    assert f"{recipe.source} line 2, teacher.custom_objects" in message
    assert "'nowhere_x4'" in message and "nowhere_x4.py" in message and "PYTHONPATH" in message
    assert info.value.exit_code == 2


def test_a_students_module_is_looked_up_beside_the_student(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stages = ("stages:\n  - distill:\n      student: {path: students/student.keras, custom_objects: s_x5, "
              "trust_code: true}\n")
    (tmp_path / "students").mkdir()
    (tmp_path / "students" / "student.keras").write_bytes(b"PK\x03\x04")
    recipe = recipe_at(tmp_path, "{path: model.keras}", stages)
    with pytest.raises(InputError, match=r"stages\[0\].distill.student.custom_objects.*'s_x5'"):
        check_files(recipe)

    (tmp_path / "students" / "s_x5.py").write_text(EXPLOSIVE)
    check_files(recipe)


def test_importing_leaves_sys_path_as_it_was(tmp_path):
    (tmp_path / "imported_x6.py").write_text("OBJECTS = {'A': int}\n")
    before = list(sys.path)

    module, objects = usercode.load("imported_x6:OBJECTS", tmp_path, "teacher.custom_objects")

    assert objects == {"A": int} and module.__file__ == str(tmp_path / "imported_x6.py")
    assert sys.path == before
    with pytest.raises(InputError, match="teacher.custom_objects: module 'imported_x6' has no 'MISSING'"):
        usercode.load("imported_x6:MISSING", tmp_path, "teacher.custom_objects")
    with pytest.raises(InputError, match="teacher.custom_objects: cannot import module 'absent_x6'"):
        usercode.load("absent_x6", tmp_path, "teacher.custom_objects")


# ---- the stage cache's key -------------------------------------------------------------------

class _Data:
    def fingerprint(self) -> str:
        return "data"


def test_the_teacher_key_covers_the_module_name_and_its_code(tmp_path):
    (tmp_path / "key_layers.py").write_text("A = 1\n")
    plain = recipe_at(tmp_path, "{path: model.keras, trust_code: true}")
    named = recipe_at(tmp_path, "{path: model.keras, custom_objects: key_layers, trust_code: true}")
    base, with_module = teacher_key(plain, _Data(), "keras"), teacher_key(named, _Data(), "keras")

    (tmp_path / "key_layers.py").write_text("A = 2\n")
    edited = teacher_key(named, _Data(), "keras")

    assert len({base, with_module, edited}) == 3
    assert teacher_key(plain, _Data(), "keras") == base


def test_a_built_teacher_takes_no_custom_objects(tmp_path):
    with pytest.raises(RecipeError, match="teacher.custom_objects applies to a teacher loaded from teacher.path"):
        recipe_at(tmp_path, "{build: {arch: mlp}, custom_objects: my_layers, trust_code: true}")
