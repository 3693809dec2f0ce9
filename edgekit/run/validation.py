"""`edgekit validate`: everything that can be checked without training.

The default checks are instant (no data read, no framework imported): the schema, the supported
combinations (edgekit.recipe.support) and that every file the recipe names exists. `--deep` also reads
the data and loads (or builds, untrained) the teacher with its framework, then checks that the
data's shapes and labels fit the model and runs each stage's preflight (e.g. channel pruning's
topology check) — the same checks `compress` makes before it trains anything.
"""

from __future__ import annotations

from pathlib import Path

from edgekit import usercode
from edgekit.errors import InputError
from edgekit.recipe import Recipe


def check_files(recipe: Recipe) -> None:
    """Raise InputError naming the key of the first file that does not exist, or of a custom_objects
    module that cannot be found (located, not imported: that is for --deep and compress)."""
    for key, value in recipe.named_files():
        if not recipe.resolve_path(value).exists():
            raise InputError(f"{recipe.where(*key)}: '{value}' does not exist (looked beside the recipe, then in "
                             "the working directory).")
    for where, model in recipe.loaded_models():
        if not model.custom_objects:
            continue
        beside = recipe.resolve_path(model.path).parent
        module = usercode.split(model.custom_objects)[0]
        if usercode.locate(module, beside) is None:
            raise InputError(f"{recipe.where(*where, 'custom_objects')}: cannot find the Python module "
                             f"'{module}': looked for {module.replace('.', '/')}.py (or a package of that name) "
                             f"beside the model in {beside}, in the working directory {Path.cwd()}, then on "
                             "PYTHONPATH. Put the module there, or fix the name.")


def check_deep(recipe: Recipe, framework: str) -> dict:
    """Read the data and the teacher, check they fit, run the preflight; returns what was found."""
    from edgekit.backends import get_backend
    from edgekit.data import load_dataset
    from edgekit.run.context import RunContext

    dataset = load_dataset(recipe.data, task=recipe.task, seed=recipe.seed, resolve=recipe.resolve_path)
    backend = get_backend(framework)
    teacher = recipe.teacher
    if teacher.path:
        model = backend.load(recipe.resolve_path(teacher.path), teacher.factory, teacher.trust_code,
                             teacher.custom_objects)
    else:
        model = build_teacher(recipe, dataset, backend)
    backend.check_compatible(model, dataset, recipe.task, where=str(teacher.path or "teacher.build"))
    backend.preflight(model, RunContext(recipe, dataset, framework))
    return {**dataset.summary(), "params": backend.describe(model)["params"]}


def build_teacher(recipe: Recipe, dataset, backend):
    """The zoo teacher of `teacher.build`, untrained but for its pretrained base (`weights`); InputError
    names `teacher.build.arch` when the data cannot go through the base, `weights` when the file does
    not fit it."""
    from edgekit.zoo import check_base_input

    build = recipe.teacher.build
    weights = recipe.resolve_path(build.weights) if build.weights else None
    check_base_input(build.arch, dataset.input_shape, weights is not None,
                     where=recipe.where("teacher", "build", "arch"))
    head = build.head.spec() if build.head else None
    try:
        return backend.build(build.arch, build.width, dataset.input_shape, dataset.num_classes, recipe.task,
                             recipe.seed, head=head, weights=weights)
    except InputError as exc:
        if "teacher.build.weights" in str(exc):
            raise InputError(f"{recipe.where('teacher', 'build', 'weights')}: "
                             f"{str(exc).removeprefix('teacher.build.weights: ')}") from None
        raise
