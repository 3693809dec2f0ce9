"""Loading Keras teachers: `.keras`, `.h5` (including Keras 2.x files) and SavedModel directories.

Models are loaded with `compile=False` (edgekit compiles what it trains) and `safe_mode=True` for
`.keras` files, which refuses to deserialise arbitrary Python lambdas. Custom layers come from the
recipe's `custom_objects` (edgekit.backends.keras.custom), imported only with `trust_code`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

from edgekit.errors import InputError
from edgekit.quiet import native_stderr_silenced
from edgekit.backends.keras import custom
from edgekit.backends.keras.compat import keras

SUFFIXES = (".keras", ".h5", ".hdf5")


_UNSAFE_CODE_MESSAGE = (
    "{path}: the model holds a Lambda layer, whose Python code would run when the file is loaded. "
    "edgekit does not execute code from model files unless you trust the source: set "
    "{prefix}.trust_code: true to load it, or rebuild the model without Lambda layers."
)


def holds_python_code(path: Path) -> bool:
    """True when a .h5 or SavedModel declares a Lambda layer (marshalled Python bytecode).
    `.keras` files are checked by Keras itself (safe_mode)."""
    try:
        if path.is_dir():
            metadata = path / "keras_metadata.pb"
            return metadata.exists() and b'"class_name": "Lambda"' in metadata.read_bytes()
        if path.suffix.lower() in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as handle:
                config = handle.attrs.get("model_config", "")
            config = config.decode() if isinstance(config, bytes) else str(config)
            return '"class_name": "Lambda"' in config
    except OSError:
        return False  # unreadable: load() reports it
    return False


def _not_a_zip(path: Path, key: str) -> str:
    """Why a `.keras` file that is not a readable zip archive (config.json, model.weights.h5) cannot be
    loaded; "" for an HDF5 file, which Keras reads whatever its name."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return (f"{path}: a damaged or truncated .keras archive ({key}): the zip archive cannot be read to the "
                "end. Copy or save the model again (model.save(\"model.keras\")).")
    if head == b"\x89HDF\r\n\x1a\n":
        return ""
    return (f"{path}: not a Keras model ({key}): a .keras file is a zip archive written by model.save, and "
            "this file is not one. Is it complete, and is it the model you meant?")


def load(path: Path, trust_code: bool = False, key: str = "teacher.path", custom_objects: Optional[str] = None):
    """Load a Keras model; Lambda layers (arbitrary Python) and the module `custom_objects` names
    ("module" or "module:dict", looked up beside the file first) only with `trust_code`.

    `key` is the recipe key that named the file (e.g. "distill.student.path"), for messages."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: the model file does not exist ({key}). Check the path, "
                         "which is read relative to the recipe file, then to the working directory.")
    if path.is_dir() and not (path / "saved_model.pb").exists():
        raise InputError(f"{path}: a directory given as {key} must be a TensorFlow SavedModel "
                         "(it has no saved_model.pb).")
    if path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: not a Keras model file ({key}). Keras models are "
                         f"{', '.join(SUFFIXES)} files or SavedModel directories.")
    if path.is_file() and path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        problem = _not_a_zip(path, key)
        if problem:
            raise InputError(problem)
    prefix = key.rpartition(".")[0] or "teacher"  # the recipe section: teacher, distill.student
    if not trust_code and holds_python_code(path):
        raise InputError(_UNSAFE_CODE_MESSAGE.format(path=path, prefix=prefix))
    objects = custom.objects_of(custom_objects, path.parent, trust_code, prefix)
    kwargs = {"compile": False, "custom_objects": objects}
    if path.suffix.lower() == ".keras":
        kwargs["safe_mode"] = not trust_code
    try:
        with native_stderr_silenced():
            model = keras.models.load_model(str(path), **kwargs)
    except Exception as exc:
        if "arbitrary code execution" in str(exc):
            raise InputError(_UNSAFE_CODE_MESSAGE.format(path=path, prefix=prefix)) from None
        unknown = custom.unknown_message(path, exc, objects, key, custom_objects)
        if unknown:
            raise InputError(unknown) from None
        raise InputError(f"{path}: cannot load the Keras model ({key}): {str(exc).strip()[:400]}. "
                         "Is the file complete and saved by Keras (model.save)?") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"{path}: the SavedModel is not a Keras model. Save it with Keras "
                         "(model.save(dir)) so edgekit can read its layers.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "edgekit compresses single-input, single-output classifiers and regressors.")
    return model
