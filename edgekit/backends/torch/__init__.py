"""The PyTorch backend: the same recipe keys as Keras, torch models underneath.

Arrays cross this boundary in edgekit's channels-last layout and are transposed to NCHW here, so
a torch teacher takes the same `data:` section as a Keras one. Exported files keep torch's NCHW
input unless `export.channels_last: true` asks for an NHWC `.tflite` (the format's writer for torch
says which layout it gives: edgekit.formats.tflite).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgekit.artifact import QuantizationAware
from edgekit.errors import InputError
from edgekit.backends.base import TrainModuleBackend, check_labels_fit
from edgekit.backends.torch import cached, distill, distributed, loading, prune, qat, train, transfer, zoo
from edgekit.backends.torch.compat import torch
from edgekit.backends.torch.layout import model_shape, to_nchw


class TorchBackend(TrainModuleBackend):
    framework = "torch"
    _train = train
    _transfer = transfer
    _distributed = distributed

    def load(self, path: Path, factory: Optional[str] = None, trust_code: bool = False,
             custom_objects: Optional[str] = None):
        """`trust_code` and `custom_objects` are Keras-only (refused for torch at validation): torch
        files never unpickle code, and a state_dict's module comes from `factory`."""
        return loading.load(Path(path), factory)

    def build(self, arch, width, input_shape, outputs, task, seed, head=None, weights=None):
        torch.manual_seed(seed)
        return zoo.build(arch, width, tuple(input_shape), outputs, task, head=head, weights=weights)

    def describe(self, model) -> dict:
        return {"name": type(model).__name__, "params": train.param_count(model), "layers": len(list(model.modules()))}

    def check_compatible(self, model, dataset, task: str, where: str = "teacher") -> None:
        sample = dataset.x_train[:1]
        try:
            out = train.predict(model, sample)
        except Exception as exc:  # a shape mismatch surfaces as whatever the first layer raises
            raise InputError(
                f"{where}: the model cannot take samples of shape {list(model_shape(dataset.input_shape))} "
                f"(channels-first; the data holds {list(dataset.input_shape)} channels-last): {str(exc)[:300]}. "
                "Check data.layout (nhwc | nchw), data.image_size, or the arrays named in data.keys."
            ) from None
        outputs = int(out.shape[-1]) if out.ndim > 1 else 1
        check_labels_fit(dataset, outputs, task, where)

    def make_student(self, config, teacher, dataset, recipe):
        return distill.make_student(config, teacher, dataset, recipe)

    def check_channels_prunable(self, model, dataset) -> None:
        prune.check_prunable(model, dataset)

    def equalize(self, model):
        from edgekit.backends.torch import equalize

        return equalize.equalize(model)

    def correct_bias(self, model, samples, per_channel: bool = True):
        from edgekit.backends.torch import bias_correction

        return bias_correction.correct_bias(model, samples, per_channel)

    def weight_layers(self, model) -> list[str]:
        return [name for name, module in model.named_modules()
                if name and any(p.dim() >= 2 for p in module.parameters(recurse=False))]

    def layer_classes(self, model) -> list[tuple[str, str]]:
        return [(name, type(module).__name__) for name, module in model.named_modules() if name]

    def save_cached(self, model, directory: Path) -> None:
        """Save for the stage cache without pickles (see `cached`)."""
        cached.save(model, directory)

    def load_cached(self, directory: Path, context, quantization_aware: bool = False):
        return cached.load(directory, context, quantization_aware)

    def qat_state(self, float_model=None) -> QuantizationAware:
        """The PT2E quantizer QAT trains with (a fixed configuration, rebuilt rather than stored) and
        the fine-tuned float weights ONNX Runtime quantizes."""
        return QuantizationAware(float_model=float_model, quantizer=qat.make_quantizer())



BACKEND = TorchBackend()

__all__ = ["BACKEND", "TorchBackend", "to_nchw"]
