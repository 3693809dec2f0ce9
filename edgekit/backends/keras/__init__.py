"""The Keras backend (tf_keras, i.e. Keras 2, which TF-MOT requires)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgekit.artifact import QuantizationAware
from edgekit.errors import InputError
from edgekit.backends.base import TrainModuleBackend, check_labels_fit
from edgekit.backends.keras import channels, cluster, distill, loading, prune, qat, train, zoo


def _shape(shape) -> list:
    return [None if d is None else int(d) for d in shape]


class KerasBackend(TrainModuleBackend):
    framework = "keras"
    _train = train

    def preflight(self, model, ctx) -> None:
        """Refuse, before any training, stages the model they will receive cannot take: channel
        pruning of a topology it cannot rebuild is named here, not after the teacher trained."""
        current = model
        for i, stage in enumerate(ctx.recipe.stages):
            if stage.kind == "distill":
                current = distill.make_student(stage.distill, current, ctx.dataset, ctx.recipe)
            elif stage.kind == "prune" and stage.prune.structure == "channels":
                try:
                    channels.check_prunable(current)
                except InputError as exc:
                    raise InputError(f"{ctx.recipe.where('stages', i)}: structure: channels cannot prune "
                                     f"'{current.name}': {exc}") from None

    def load(self, path: Path, factory: Optional[str] = None, trust_code: bool = False):
        """`factory` is a torch-only option, refused for Keras teachers at validation."""
        return loading.load(path, trust_code)

    def build(self, arch, width, input_shape, outputs, task, seed):
        train.keras.utils.set_random_seed(seed)
        return zoo.build(arch, width, tuple(input_shape), outputs, task)

    def describe(self, model) -> dict:
        return {
            "name": model.name,
            "params": int(model.count_params()),
            "input_shape": _shape(model.input_shape),
            "output_shape": _shape(model.output_shape),
            "layers": len(model.layers),
        }

    def check_compatible(self, model, dataset, task: str, where: str = "teacher") -> None:
        expected = tuple(model.input_shape[1:])
        given = dataset.input_shape
        if len(expected) != len(given) or any(e is not None and e != g for e, g in zip(expected, given)):
            raise InputError(
                f"{where}: the model expects samples of shape {list(expected)} but the data has {list(given)}. "
                "Check data.layout (nhwc | nchw), data.image_size, or the arrays named in data.keys."
            )
        check_labels_fit(dataset, model.output_shape[-1], task, where)

    def save_cached(self, model, directory: Path) -> None:
        """Save for the stage cache: HDF5, the one format that also round-trips TF-MOT QAT models."""
        import warnings

        directory.mkdir(parents=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(str(directory / "model.h5"))

    def load_cached(self, directory: Path, quantization_aware: bool = False):
        from edgekit.backends.keras.compat import keras, tfmot

        path = str(directory / "model.h5")
        if quantization_aware:
            with tfmot().quantization.keras.quantize_scope():
                return keras.models.load_model(path, compile=False)
        return keras.models.load_model(path, compile=False)

    def qat_state(self, float_model=None) -> QuantizationAware:
        """A TF-MOT QAT model needs nothing beside itself: its exporters read the fake-quant ranges."""
        return QuantizationAware()


BACKEND = KerasBackend()
