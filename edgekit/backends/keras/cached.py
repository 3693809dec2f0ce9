"""Keras models in the stage cache: one HDF5 file, `model.h5`.

HDF5 holds the model's config as JSON and its weights as arrays: loading it unpickles nothing.
The one way a Keras file runs code is a Lambda layer (marshalled Python bytecode), which is refused
here as for teachers (`loading.holds_python_code`) unless the recipe's teacher is trusted
(`teacher.trust_code`, or a distill student's), the only way such a layer gets into a run. Custom
layers load with the run's `custom_objects` (edgekit.backends.keras.custom.run_objects). HDF5 rather than `.keras`:
it is the format that round-trips TF-MOT quantization-aware models (under `quantize_scope`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

from edgekit.errors import InputError
from edgekit.backends.keras.compat import keras, tfmot
from edgekit.backends.keras.loading import holds_python_code

FILE = "model.h5"


def save(model, directory: Path) -> None:
    directory.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(directory / FILE))


def load(directory: Path, quantization_aware: bool = False, trust_code: bool = False,
         custom_objects: Optional[dict] = None):
    """The cached model; `custom_objects` are the run's (`custom.run_objects`), its custom layers."""
    path = directory / FILE
    if not path.is_file():
        raise InputError(f"{directory}: no {FILE} (not an entry written by edgekit's Keras backend)")
    if not trust_code and holds_python_code(path):
        raise InputError(f"{path}: the cached model holds a Lambda layer (Python code), and the recipe's "
                         "teacher is not trusted (teacher.trust_code)")
    objects = dict(custom_objects or {})
    if quantization_aware:
        with tfmot().quantization.keras.quantize_scope():
            return keras.models.load_model(str(path), compile=False, custom_objects=objects)
    return keras.models.load_model(str(path), compile=False, custom_objects=objects)
