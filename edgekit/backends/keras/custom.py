"""Keras custom layers: the objects a recipe's `custom_objects` names, and what a model lacks.

`custom_objects: layers` imports the module `layers` (beside the model file, in the working
directory, then on PYTHONPATH; see edgekit.usercode): classes it registers with
`register_keras_serializable` are then known to Keras, and every public class or function it defines
is passed to `load_model` by name as well (for classes that are not registered).
`custom_objects: layers:OBJECTS` takes the dict `OBJECTS` (name -> class) instead. Both run the
user's code, so both need `trust_code: true` on the same model (checked at validation, again here).

When Keras cannot load a model, `missing` reads the model's own config (`config.json` in a `.keras`
archive, the `model_config` attribute of an `.h5`) for the layers that are neither Keras's nor known,
so the message names the class and the keys that fix it instead of Keras's "'str' object is not
callable".
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Optional

from edgekit import usercode
from edgekit.errors import InputError
from edgekit.backends.keras.compat import keras

_MODELS = ("Functional", "Sequential", "Model")
_UNKNOWN = re.compile(r"Unknown ([a-z ]+?): '?([\w.>]+)'?")


def objects_of(reference: Optional[str], beside: Path, trust_code: bool, prefix: str = "teacher") -> dict:
    """The name -> object mapping that `reference` ("module" or "module:dict") gives; {} without one.
    `prefix` is the recipe section (`teacher`, `distill.student`) for messages."""
    if not reference:
        return {}
    if not trust_code:
        raise InputError(f"{prefix}.custom_objects: importing '{reference}' runs its Python code; set "
                         f"{prefix}.trust_code: true if you trust it.")
    key = f"{prefix}.custom_objects"
    try:
        module, named = usercode.load(reference, beside, key)
    except ValueError as exc:
        raise InputError(f"{key}: {exc}") from None
    if named is None:
        return {name: value for name, value in vars(module).items()
                if not name.startswith("_") and callable(value)
                and getattr(value, "__module__", None) == module.__name__}
    if not isinstance(named, dict) or not all(isinstance(name, str) for name in named):
        raise InputError(f"{key}: '{reference}' is a {type(named).__name__}, not a dict of name -> class "
                         "(e.g. CUSTOM_OBJECTS = {\"SelfAttention\": SelfAttention}).")
    return dict(named)


def run_objects(recipe) -> tuple[bool, dict]:
    """(trusted, objects) for models of this run read back from the stage cache: a cached model may be
    the teacher or a distilled student, so it gets the custom objects of both and is trusted if
    either file was (the run trained it from those files)."""
    trusted, objects = False, {}
    for where, model in recipe.loaded_models():
        prefix = ".".join(str(part) for part in where[2:]) if where[0] == "stages" else "teacher"
        trusted = trusted or bool(model.trust_code)
        objects.update(objects_of(model.custom_objects, recipe.resolve_path(model.path).parent,
                                  model.trust_code, prefix))
    return trusted, objects


def model_config(path: Path) -> Optional[dict]:
    """The architecture JSON Keras saved with the model, or None (a SavedModel, an unreadable file)."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        if path.suffix.lower() in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                config = handle.attrs.get("model_config")
            if config is None:
                return None
            return json.loads(config.decode() if isinstance(config, bytes) else str(config))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return None


def _layers(config: Any):
    """Every layer entry of a model config, nested models included, then the model itself."""
    if not isinstance(config, dict):
        return
    for layer in (config.get("config") or {}).get("layers") or []:
        if isinstance(layer, dict) and "class_name" in layer:
            yield from _layers(layer)
    if "class_name" in config:
        yield config


def _known(entry: dict, objects: dict) -> bool:
    name, module = str(entry["class_name"]), str(entry.get("module") or "")
    registered = str(entry.get("registered_name") or name)
    if name in objects or registered in objects or name.rpartition(">")[2] in objects:
        return True
    if keras.utils.get_registered_object(registered) is not None:
        return True
    if module:  # .keras files record each class's module: Keras's own, or the user's
        return module.split(".")[0] in ("keras", "tf_keras")
    return name in _MODELS or hasattr(keras.layers, name)


def missing(path: Path, objects: dict) -> list[str]:
    """The layer classes the model at `path` uses that neither Keras nor `objects` (nor a registration)
    provides, by name as saved (e.g. "mylayers>SelfAttention")."""
    config = model_config(path)
    names = [str(entry.get("registered_name") or entry["class_name"])
             for entry in _layers(config) if not _known(entry, objects)]
    return list(dict.fromkeys(names))


def unknown_message(path: Path, exc: Exception, objects: dict, key: str, reference: Optional[str]) -> Optional[str]:
    """The message for a model Keras could not load because a class is unknown, or None when that is
    not why. `key` is the recipe key of the file (`teacher.path`), `reference` its custom_objects."""
    names = missing(path, objects)
    kind = "layer"
    if not names:
        match = _UNKNOWN.search(str(exc))
        if not match:
            return None
        kind, names = match.group(1), [match.group(2)]
    prefix = key.rpartition(".")[0] or "teacher"
    name = names[0]
    shown = f"'{name.rpartition('>')[2]}'" + (f" (registered as '{name}')" if ">" in name else "")
    others = f" (and {', '.join(repr(n) for n in names[1:])})" if len(names) > 1 else ""
    if reference:
        return (f"{path}: the model uses the custom {kind} {shown}{others}, which {prefix}.custom_objects "
                f"'{reference}' neither registers nor defines. Point {prefix}.custom_objects at the module "
                "that defines it (with module:dict, add it to the dict).")
    return (f"{path}: the model uses the custom {kind} {shown}{others}, which edgekit cannot find ({key}). "
            f"Set {prefix}.custom_objects: <the Python module that defines it> and {prefix}.trust_code: true "
            f"(the module is looked up {usercode.WHERE}; importing it runs its code).")


__all__ = ["missing", "model_config", "objects_of", "run_objects", "unknown_message"]
