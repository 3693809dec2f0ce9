"""What this version implements, as data: which frameworks, stages, formats and options go together.

The stages come from the stage registry (edgekit.stages), the formats, their writers and what
each writer refuses from the format registry (edgekit.formats.registry).

`check_support` runs when a recipe is validated, before any data is read or model trained, so an
unsupported combination fails in a second with a message that names the recipe line.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgekit.errors import RecipeError
from edgekit.formats.registry import frameworks_of, get_format, refusals
from edgekit.recipe.models import Recipe, _dotted
from edgekit.stages import frameworks, implemented_labels
from edgekit.zoo import ARCH_LAYERS, LAYER_KINDS

FRAMEWORK_BY_SUFFIX = {
    ".keras": "keras", ".h5": "keras", ".hdf5": "keras",
    ".pt2": "torch", ".pt": "torch", ".ts": "torch", ".pth": "torch",
    "": "keras",  # a SavedModel directory that does not exist yet, named without a suffix
}
# options of a loaded model that only some frameworks' loaders read: key -> (those frameworks, why not
# elsewhere). Checked on the teacher and on each distill student loaded from a file (which has no
# factory); `{key}` is the option as written (teacher.trust_code, stages[0].distill.student.trust_code).
TEACHER_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "factory": (("torch",), "{key} applies to torch teachers only."),
    "custom_objects": (("keras",), "{key} names the module of a Keras model's custom layers; a torch model "
                                   "needs none (a state_dict's module comes from teacher.factory), so remove it "
                                   "(not possible for torch teachers)."),
    "trust_code": (("keras",), "{key} applies to Keras Lambda layers and custom layers; edgekit never unpickles "
                               "torch modules, so there is nothing to trust (not possible for torch teachers)."),
}

# framework -> its own engine for training on several workers (`compute.workers`, torchrun, TF_CONFIG);
# a framework missing here trains in one process only, and validation says so
DISTRIBUTED_ENGINES: dict[str, str] = {
    "torch": "DistributedDataParallel (gloo on the CPU, NCCL on GPUs)",
    "keras": "tf.distribute.MultiWorkerMirroredStrategy",
}
WORKERS_REFUSED = "{framework} models train in one process in this version; set compute.workers: 1."


def engine_of(framework: str) -> str | None:
    """The engine `framework` trains on several workers with, or None where it cannot."""
    return DISTRIBUTED_ENGINES.get(framework)


def check_one_process(recipe: Recipe, command: str) -> None:
    """RecipeError when a recipe asks for several training workers of a command that trains in one
    process (`analyze`; `search`, whose parallelism is its trials on Ray)."""
    if recipe.compute.workers > 1:
        raise RecipeError(f"{recipe.where('compute', 'workers')}: edgekit {command} trains in one process; "
                          "several training workers are for edgekit compress (--workers N). Set "
                          "compute.workers: 1 here (--set compute.workers=1).")


# archs that a framework builds only with an extra package, or not at all: arch -> {framework: package
# it needs there, or None when it has the arch built in}; a framework missing from an arch's entry lacks
# it. Archs not listed are built in by every framework. Checked for teacher.build and distill students.
ARCH_PACKAGES: dict[str, dict[str, str | None]] = {
    "resnet50": {"keras": None, "torch": "torchvision"},
    "efficientnet_b0": {"keras": None, "torch": "torchvision"},
}

# framework -> stage labels (Stage.label) that this version can run, from the stage registry
IMPLEMENTED_STAGES: dict[str, set[str]] = {framework: implemented_labels(framework) for framework in frameworks()}
# recipe options documented in the contract whose implementation has not landed yet
PENDING_OPTIONS: dict[tuple[str, str], str] = {}
# where each refusable export choice (edgekit.formats.base.choices) is written in a recipe
_EXPORT_KEYS = {"export.sparse": ("export", "sparse"), "export.channels_last.false": ("export", "channels_last")}


def teacher_framework(recipe: Recipe) -> str:
    """teacher.framework, else inferred from teacher.path (a directory is a SavedModel), else keras."""
    teacher = recipe.teacher
    if teacher.framework:
        return teacher.framework
    if teacher.path:
        if recipe.resolve_path(teacher.path).is_dir():
            return "keras"  # a SavedModel directory, whatever its name
        suffix = Path(teacher.path).suffix.lower()
        if suffix in FRAMEWORK_BY_SUFFIX:
            return FRAMEWORK_BY_SUFFIX[suffix]
        raise RecipeError(
            f"{recipe.where('teacher', 'path')}: cannot tell the framework of '{teacher.path}' from its suffix; "
            f"known suffixes are {', '.join(s for s in FRAMEWORK_BY_SUFFIX if s)} (or a SavedModel directory). "
            "Set teacher.framework: keras | torch."
        )
    return "keras"


def _teacher_and_students(recipe: Recipe) -> list[tuple[tuple, object]]:
    """The sections whose options TEACHER_OPTIONS checks: the teacher (loaded or built) and every
    distill student loaded from a file."""
    return [(("teacher",), recipe.teacher)] + [m for m in recipe.loaded_models() if m[0][0] != "teacher"]


def _built_archs(recipe: Recipe) -> list[tuple[tuple, str]]:
    """(key path of `arch`, arch) of the teacher built from the zoo and of each zoo distill student."""
    archs = [(("teacher", "build", "arch"), recipe.teacher.build.arch)] if recipe.teacher.build else []
    for i, stage in enumerate(recipe.stages):
        student = getattr(stage.config, "student", None)
        if getattr(student, "arch", None):
            archs.append((("stages", i, stage.kind, "student", "arch"), student.arch))
    return archs


def _check_arch(recipe: Recipe, where: tuple, arch: str, framework: str) -> None:
    """RecipeError when `framework` cannot build `arch` here (ARCH_PACKAGES)."""
    needs = ARCH_PACKAGES.get(arch, {framework: None})
    if framework not in needs:
        raise RecipeError(f"{recipe.where(*where)}: {arch} cannot be built for {framework} "
                          f"teachers (the frameworks that build it: {', '.join(needs)}); choose another arch.")
    package = needs[framework]
    if package and importlib.util.find_spec(package) is None:
        raise RecipeError(f"{recipe.where(*where)}: {arch} for {framework} comes from the "
                          f"'{package}' package, which is not installed here. Install {package} (matching the "
                          f"installed {framework} build), or choose mobilenet_v2, which edgekit builds itself.")


def _key_path(recipe: Recipe, choice: str) -> tuple:
    """Where the recipe makes a refusable choice: an export key, or a key of the quantize stage
    (`quantize.precision.*` -> precision, `quantize.calibration.*` -> calibration, `qat.io.*` -> io)."""
    if choice in _EXPORT_KEYS:
        return _EXPORT_KEYS[choice]
    stage = next(i for i, s in enumerate(recipe.stages) if s.kind == "quantize")
    key = choice.split(".")[1] if choice.startswith("quantize.") else "io"
    return ("stages", stage, "quantize", key)


def check_layers(recipe: Recipe, framework: str) -> None:
    """Refuse a stage that reaches a built-in architecture holding a layer the stage refuses
    (`StageConfig.layer_refusals`): the teacher's `build.arch`, then each zoo student from its distill
    stage on. Models loaded from files are checked the same way once loaded (`Backend.preflight`)."""
    arch = recipe.teacher.build.arch if recipe.teacher.build else None
    for i, stage in enumerate(recipe.stages):
        if stage.kind == "distill":
            arch = stage.distill.student.arch
        refused = stage.config.refused_layers(framework)
        for kind in ARCH_LAYERS.get(arch, ()):
            if kind in refused:
                raise RecipeError(f"{recipe.where('stages', i)}: {stage.label} ({stage.config.summary()}) cannot "
                                  f"take the {LAYER_KINDS[kind][framework]} layers of the {arch} arch ({framework}): "
                                  f"{refused[kind]}")


def check_support(recipe: Recipe) -> str:
    """Raise RecipeError for what this version cannot do; return the teacher's framework."""
    framework = teacher_framework(recipe)
    if framework not in IMPLEMENTED_STAGES:
        raise RecipeError(
            f"{recipe.where('teacher')}: {framework} teachers are not supported by this version of edgekit, "
            f"which compresses {', '.join(IMPLEMENTED_STAGES)} models. Use a Keras teacher (.keras, .h5 or a "
            "SavedModel directory) or teacher.build with teacher.framework: keras."
        )
    for where, config in _teacher_and_students(recipe):
        for key, (readers, why) in TEACHER_OPTIONS.items():
            if getattr(config, key, None) and framework not in readers:
                raise RecipeError(f"{recipe.where(*where, key)}: {why.format(key=_dotted((*where, key)))}")
        if config.custom_objects and not config.trust_code:
            raise RecipeError(
                f"{recipe.where(*where, 'custom_objects')}: importing the Python module "
                f"'{config.custom_objects}' runs its code, so custom_objects needs "
                f"{_dotted((*where, 'trust_code'))}: true beside it (as Lambda layers do). Set it if you trust "
                "that module; else remove custom_objects.")
    for where, arch in _built_archs(recipe):
        _check_arch(recipe, where, arch, framework)
    for i, stage in enumerate(recipe.stages):
        if stage.label not in IMPLEMENTED_STAGES[framework]:
            available = ", ".join(sorted(IMPLEMENTED_STAGES[framework]))
            raise RecipeError(
                f"{recipe.where('stages', i)}: the '{stage.label}' stage is not available for {framework} "
                f"teachers in this version of edgekit (available: {available}). Remove the stage to run the rest."
            )
    check_layers(recipe, framework)
    plan = recipe.quantize.plan() if recipe.quantize is not None else None
    for fmt in recipe.export.formats:
        if framework not in frameworks_of(fmt):
            raise RecipeError(f"{recipe.where('export', 'formats')}: {get_format(fmt).refusal_of(framework)} "
                              f"(export.formats: {fmt} is not possible for {framework} teachers).")
        for refusal in refusals(framework, fmt, plan, recipe.export):
            raise RecipeError(f"{recipe.where(*_key_path(recipe, refusal.key))}: {refusal.reason} "
                              f"(not possible for {framework} teachers).")
    if recipe.compute.workers > 1 and not engine_of(framework):
        raise RecipeError(f"{recipe.where('compute', 'workers')}: {WORKERS_REFUSED.format(framework=framework)}")
    for i, stage in enumerate(recipe.stages):
        why = stage.config.refused_precisions(framework).get(recipe.compute.precision)
        if why:
            raise RecipeError(f"{recipe.where('stages', i)}: {stage.label} cannot train {framework} models with "
                              f"compute.precision: {recipe.compute.precision}: {why}")
    for (section, key), message in PENDING_OPTIONS.items():
        if getattr(getattr(recipe, section), key):
            raise RecipeError(f"{recipe.where(section, key)}: {message}.")
    return framework
