"""Keras models with custom layers: `custom_objects` (a module, or module:dict) with `trust_code`.

The models are saved by another process (tests/custom_layers.py), so their classes are unknown here
until edgekit imports the module the recipe names."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends import get_backend
from edgekit.backends.keras import cached, custom, loading
from edgekit.errors import InputError, RecipeError
from edgekit.recipe import load_recipe
from edgekit.recipe.support import check_support
from tests.custom_layers import write_models

keras_backend = get_backend("keras")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("custom")
    attention, plain = write_models(folder, "kt")
    return folder, attention, plain, np.load(folder / "outputs.npz")


def predict(model, inputs):
    return keras_backend.predict(model, inputs)


# The order matters: a registered class stays registered once its module is imported, so the
# "unknown" cases come first in the file (pytest keeps the order).

@pytest.mark.parametrize("name", ["attention.keras", "attention.h5", "scale.keras"])
def test_without_custom_objects_the_class_and_the_keys_are_named(models, name):
    folder, *_ = models

    with pytest.raises(InputError) as info:
        keras_backend.load(folder / name)

    message = str(info.value)
    cls = "SelfAttention" if name.startswith("attention") else "Scale"
    assert f"custom layer '{cls}'" in message and name in message
    assert "teacher.custom_objects:" in message and "teacher.trust_code: true" in message
    assert "'str' object is not callable" not in message
    assert info.value.exit_code == 2


def test_custom_objects_without_trust_code_is_refused(models):
    folder, attention, *_ = models
    recipe_path = folder / "untrusted.yaml"
    recipe_path.write_text(f"version: 1\nteacher: {{path: attention.keras, custom_objects: {attention}}}\n")

    with pytest.raises(RecipeError, match="teacher.trust_code: true"):
        check_support(load_recipe(recipe_path))
    with pytest.raises(InputError, match="teacher.trust_code: true"):  # the loader checks it again
        keras_backend.load(folder / "attention.keras", custom_objects=attention)


def test_a_dict_without_the_class_names_what_is_missing(models):
    folder, attention, plain, _ = models
    (folder / "other_kt.py").write_text("OBJECTS = {}\n")

    with pytest.raises(InputError) as info:
        keras_backend.load(folder / "scale.keras", trust_code=True, custom_objects="other_kt:OBJECTS")

    message = str(info.value)
    assert "'Scale'" in message and "teacher.custom_objects 'other_kt:OBJECTS' neither registers nor defines" in message


def test_a_name_that_is_not_a_dict_is_refused(models):
    folder, *_ = models
    (folder / "notdict_kt.py").write_text("OBJECTS = [1, 2]\n")

    with pytest.raises(InputError, match="teacher.custom_objects: 'notdict_kt:OBJECTS' is a list, not a dict"):
        keras_backend.load(folder / "scale.keras", trust_code=True, custom_objects="notdict_kt:OBJECTS")


@pytest.mark.parametrize("name", ["attention.keras", "attention.h5"])
def test_a_registering_module_loads_the_model_and_it_predicts_the_same(models, name):
    folder, attention, _, outputs = models

    model = keras_backend.load(folder / name, trust_code=True, custom_objects=attention)

    np.testing.assert_allclose(predict(model, outputs["inputs"]), outputs["attention"], atol=1e-5)


def test_the_module_dict_form_loads_an_unregistered_class(models):
    folder, _, plain, outputs = models

    model = keras_backend.load(folder / "scale.keras", trust_code=True, custom_objects=f"{plain}:OBJECTS")

    np.testing.assert_allclose(predict(model, outputs["inputs"]), outputs["scale"], atol=1e-5)
    same = keras_backend.load(folder / "scale.keras", trust_code=True, custom_objects=plain)  # classes it defines
    np.testing.assert_allclose(predict(same, outputs["inputs"]), outputs["scale"], atol=1e-5)


def _recipe(folder, name, teacher: str, stages: str = ""):
    path = folder / name
    path.write_text(f"version: 1\nteacher: {teacher}\n{stages}")
    return load_recipe(path)


def test_the_stage_cache_reads_a_custom_model_back_with_the_runs_objects(models, tmp_path):
    folder, _, plain, outputs = models
    recipe = _recipe(folder, "cached.yaml", f"{{path: scale.keras, custom_objects: '{plain}:OBJECTS', "
                                            "trust_code: true}")
    model = keras_backend.load(folder / "scale.keras", trust_code=True, custom_objects=f"{plain}:OBJECTS")
    cached.save(model, tmp_path / "entry")

    trusted, objects = custom.run_objects(recipe)
    restored = cached.load(tmp_path / "entry", False, trusted, objects)

    assert trusted and set(objects) == {"Scale"}
    np.testing.assert_allclose(predict(restored, outputs["inputs"]), outputs["scale"], atol=1e-5)
    with pytest.raises(Exception, match="Scale"):  # without them Keras cannot rebuild the layer
        cached.load(tmp_path / "entry", False, True, {})


def test_a_student_file_loads_with_its_own_custom_objects(models):
    from edgekit.backends.keras import distill

    folder, _, plain, outputs = models
    stages = (f"stages:\n  - distill:\n      student: {{path: scale.keras, custom_objects: '{plain}:OBJECTS', "
              "trust_code: true}\n")
    recipe = _recipe(folder, "student.yaml", "{path: attention.h5}", stages)
    teacher = keras_backend.build("mlp", 0.5, (8, 8, 1), 3, "classification", seed=0)

    student = distill.make_student(recipe.stages[0].distill, teacher, None, recipe)

    np.testing.assert_allclose(predict(student, outputs["inputs"]), outputs["scale"], atol=1e-5)
    untrusted = _recipe(folder, "student2.yaml", "{path: attention.h5}",
                        "stages:\n  - distill:\n      student: {path: scale.keras}\n")
    with pytest.raises(InputError, match=r"distill.student.custom_objects: <the Python module.*distill.student.trust_code"):
        distill.make_student(untrusted.stages[0].distill, teacher, None, untrusted)


def test_a_student_with_a_lambda_layer_is_told_its_own_trust_key(tmp_path):
    from edgekit.backends.keras.compat import keras

    inputs = keras.Input((4,))
    path = tmp_path / "lambda.h5"
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2.0)(inputs)).save(str(path))

    with pytest.raises(InputError, match="set distill.student.trust_code: true to load it"):
        loading.load(path, key="distill.student.path")
    assert loading.load(path, True, key="distill.student.path") is not None
