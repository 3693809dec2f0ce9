"""Loading Keras teachers: `.keras`, `.h5` (including Keras 2.x files) and SavedModel directories.

Models are loaded with `compile=False` (edgekit compiles what it trains) and `safe_mode=True` for
`.keras` files, which refuses to deserialise arbitrary Python lambdas.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from ...quiet import native_stderr_silenced
from .compat import keras

SUFFIXES = (".keras", ".h5", ".hdf5")


def load(path: Path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: the teacher model does not exist (teacher.path). Check the path, "
                         "which is read relative to the recipe file, then to the working directory.")
    if path.is_dir() and not (path / "saved_model.pb").exists():
        raise InputError(f"{path}: a directory given as teacher.path must be a TensorFlow SavedModel "
                         "(it has no saved_model.pb).")
    if path.is_file() and path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: not a Keras model file (teacher.path). Keras teachers are "
                         f"{', '.join(SUFFIXES)} files or SavedModel directories.")
    kwargs = {"compile": False}
    if path.suffix.lower() == ".keras":
        kwargs["safe_mode"] = True
    try:
        with native_stderr_silenced():
            model = keras.models.load_model(str(path), **kwargs)
    except Exception as exc:
        raise InputError(f"{path}: cannot load the Keras model (teacher.path): {str(exc).strip()[:400]}. "
                         "Is the file complete and saved by Keras (model.save)?") from None
    if not isinstance(model, keras.Model):
        raise InputError(f"{path}: the SavedModel is not a Keras model. Save it with Keras "
                         "(model.save(dir)) so edgekit can read its layers.")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise InputError(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                         "edgekit compresses single-input, single-output classifiers and regressors.")
    return model
