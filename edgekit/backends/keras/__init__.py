"""The Keras backend (tf_keras, i.e. Keras 2, which TF-MOT requires)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgekit.artifact import QuantizationAware
from edgekit.errors import InputError
from edgekit.backends.base import TrainModuleBackend, check_labels_fit
from edgekit.backends.keras import cached, channels, custom, distill, distributed, loading, train, transfer, zoo


def _shape(shape) -> list:
    return [None if d is None else int(d) for d in shape]


class KerasBackend(TrainModuleBackend):
    framework = "keras"
    _train = train
    _transfer = transfer
    _distributed = distributed

    def make_student(self, config, teacher, dataset, recipe):
        return distill.make_student(config, teacher, dataset, recipe)

    def check_channels_prunable(self, model, dataset) -> None:
        channels.check_prunable(model)

    def equalize(self, model):
        from edgekit.backends.keras import equalize

        return equalize.equalize(model)

    def correct_bias(self, model, samples, per_channel: bool = True):
        from edgekit.backends.keras import bias_correction

        return bias_correction.correct_bias(model, samples, per_channel)

    def weight_layers(self, model) -> list[str]:
        return [layer.name for layer in model._flatten_layers(include_self=False)
                if not list(layer._flatten_layers(include_self=False))
                and any(len(w.shape) >= 2 for w in layer.weights)]

    def layer_classes(self, model) -> list[tuple[str, str]]:
        return [(layer.name, type(layer).__name__) for layer in model._flatten_layers(include_self=False)]

    def prune_subject(self, model) -> str:
        return f"'{model.name}'"

    def load(self, path: Path, factory: Optional[str] = None, trust_code: bool = False,
             custom_objects: Optional[str] = None):
        """`factory` is a torch-only option, refused for Keras teachers at validation."""
        return loading.load(path, trust_code, custom_objects=custom_objects)

    def build(self, arch, width, input_shape, outputs, task, seed, head=None, weights=None):
        train.keras.utils.set_random_seed(seed)
        return zoo.build(arch, width, tuple(input_shape), outputs, task, head_config=head, weights=weights)

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
        """Save for the stage cache as HDF5 (see `cached`), which loads without unpickling."""
        cached.save(model, directory)

    def load_cached(self, directory: Path, context, quantization_aware: bool = False):
        trusted, objects = custom.run_objects(context.recipe)
        return cached.load(directory, quantization_aware, trusted, objects)

    def qat_state(self, float_model=None) -> QuantizationAware:
        """A TF-MOT QAT model needs nothing beside itself: its exporters read the fake-quant ranges."""
        return QuantizationAware()


BACKEND = KerasBackend()
