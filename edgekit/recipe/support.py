"""What this version implements, as data: which frameworks, stages and formats go together.

`check_support` runs when a recipe is validated, before any data is read or model trained, so an
unsupported combination fails in a second with a message that names the recipe line.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import RecipeError
from edgekit.recipe.models import Recipe
from edgekit.stages import frameworks, implemented_labels

FRAMEWORK_BY_SUFFIX = {
    ".keras": "keras", ".h5": "keras", ".hdf5": "keras",
    ".pt2": "torch", ".pt": "torch", ".ts": "torch", ".pth": "torch",
    "": "keras",  # a SavedModel directory that does not exist yet, named without a suffix
}
# teacher options that only some frameworks' loaders read: key -> (those frameworks, why not elsewhere)
TEACHER_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "factory": (("torch",), "teacher.factory applies to torch teachers only."),
}

# framework -> stage labels (Stage.label) that this version can run, from the stage registry
IMPLEMENTED_STAGES: dict[str, set[str]] = {framework: implemented_labels(framework) for framework in frameworks()}
IMPLEMENTED_FORMATS: dict[str, set[str]] = {
    "keras": {"tflite", "onnx"},
    "torch": {"tflite", "onnx"},
}
# (framework, what) -> why not: combinations of options a backend cannot produce
UNSUPPORTED_OPTIONS: dict[tuple[str, str], str] = {
    ("torch", "export.sparse"): "LiteRT-Torch has no sparse weight encoding; remove export.sparse",
    ("torch", "qat.io.float32"): ("LiteRT-Torch gives a quantization-aware torch model int8 inputs and outputs; "
                                  "use io: int8, or method: ptq for float32 I/O"),
    ("torch", "qat.io.uint8"): ("LiteRT-Torch gives a quantization-aware torch model int8 inputs and outputs; "
                                "use io: int8"),
    ("torch", "teacher.trust_code"): ("teacher.trust_code applies to Keras Lambda layers; edgekit never unpickles "
                                      "torch modules, so there is nothing to trust"),
    ("keras", "export.channels_last.false"): ("Keras models are channels-last (NHWC); export.channels_last: false "
                                              "(NCHW) is not possible. Remove the key"),
}
# recipe options documented in the contract whose implementation has not landed yet
PENDING_OPTIONS: dict[tuple[str, str], str] = {}


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


def _options_in_use(recipe: Recipe) -> list[tuple[str, tuple]]:
    """The option combinations of UNSUPPORTED_OPTIONS that this recipe uses, with their key paths."""
    used = []
    if recipe.teacher.trust_code:
        used.append(("teacher.trust_code", ("teacher", "trust_code")))
    if recipe.export.sparse:
        used.append(("export.sparse", ("export", "sparse")))
    if recipe.export.channels_last is False:
        used.append(("export.channels_last.false", ("export", "channels_last")))
    for i, stage in enumerate(recipe.stages):
        if stage.label == "quantize.qat":
            used.append((f"qat.io.{stage.quantize.io}", ("stages", i, "quantize", "io")))
    return used


def check_support(recipe: Recipe) -> str:
    """Raise RecipeError for what this version cannot do; return the teacher's framework."""
    framework = teacher_framework(recipe)
    if framework not in IMPLEMENTED_STAGES:
        raise RecipeError(
            f"{recipe.where('teacher')}: {framework} teachers are not supported by this version of edgekit, "
            f"which compresses {', '.join(IMPLEMENTED_STAGES)} models. Use a Keras teacher (.keras, .h5 or a "
            "SavedModel directory) or teacher.build with teacher.framework: keras."
        )
    for key, (readers, why) in TEACHER_OPTIONS.items():
        if getattr(recipe.teacher, key) and framework not in readers:
            raise RecipeError(f"{recipe.where('teacher', key)}: {why}")
    for i, stage in enumerate(recipe.stages):
        if stage.label not in IMPLEMENTED_STAGES[framework]:
            available = ", ".join(sorted(IMPLEMENTED_STAGES[framework]))
            raise RecipeError(
                f"{recipe.where('stages', i)}: the '{stage.label}' stage is not available for {framework} "
                f"teachers in this version of edgekit (available: {available}). Remove the stage to run the rest."
            )
    for fmt in recipe.export.formats:
        if fmt not in IMPLEMENTED_FORMATS[framework]:
            raise RecipeError(f"{recipe.where('export', 'formats')}: {framework} models cannot be exported to {fmt}.")
    for what, key_path in _options_in_use(recipe):
        reason = UNSUPPORTED_OPTIONS.get((framework, what))
        if reason:
            raise RecipeError(f"{recipe.where(*key_path)}: {reason} (not possible for {framework} teachers).")
    for (section, key), message in PENDING_OPTIONS.items():
        if getattr(getattr(recipe, section), key):
            raise RecipeError(f"{recipe.where(section, key)}: {message}.")
    return framework
