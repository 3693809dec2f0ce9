"""The PyTorch backend: the same recipe keys as Keras, torch models underneath.

Arrays cross this boundary in edgekit's channels-last layout and are transposed to NCHW here, so
a torch teacher takes the same `data:` section as a Keras one. Exported files keep torch's NCHW
input unless `export.channels_last: true` asks for an NHWC `.tflite` (`input_layout` says which).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgekit.artifact import QuantizationAware
from edgekit.errors import InputError
from edgekit.backends.base import TrainModuleBackend, check_labels_fit
from edgekit.backends.torch import distill, loading, prune, qat, train, zoo
from edgekit.backends.torch.compat import torch
from edgekit.backends.torch.layout import model_shape, to_nchw


class TorchBackend(TrainModuleBackend):
    framework = "torch"
    _train = train

    def load(self, path: Path, factory: Optional[str] = None, trust_code: bool = False):
        """`trust_code` is Keras-only (refused for torch at validation): torch files never unpickle code."""
        return loading.load(Path(path), factory)

    def build(self, arch, width, input_shape, outputs, task, seed):
        torch.manual_seed(seed)
        return zoo.build(arch, width, tuple(input_shape), outputs, task)

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

    def preflight(self, model, ctx) -> None:
        """Channel pruning's dependency check on the model each stage will receive, before training."""
        current = model
        for i, stage in enumerate(ctx.recipe.stages):
            if stage.kind == "distill":
                current = distill.make_student(stage.distill, current, ctx.dataset, ctx.recipe)
            elif stage.kind == "prune" and stage.prune.structure == "channels":
                try:
                    prune.check_prunable(current, ctx.dataset)
                except InputError as exc:
                    raise InputError(f"{ctx.recipe.where('stages', i)}: structure: channels cannot prune "
                                     f"this model: {exc}") from None

    CACHED_ATTRIBUTES = ("edgekit_batch",)

    def save_cached(self, model, directory: Path) -> None:
        """Save for the stage cache, which only edgekit writes: TorchScript as TorchScript, anything
        else pickled whole (exported and PT2E graphs have no other complete form), with the
        attributes edgekit sets on modules kept beside it."""
        directory.mkdir(parents=True)
        if isinstance(model, torch.jit.ScriptModule):
            torch.jit.save(model, str(directory / "model.ts"))
            return
        attributes = {name: getattr(model, name) for name in self.CACHED_ATTRIBUTES if hasattr(model, name)}
        torch.save({"model": model, "attributes": attributes}, directory / "model.pt")

    def load_cached(self, directory: Path, quantization_aware: bool = False):
        if (directory / "model.ts").exists():
            return torch.jit.load(str(directory / "model.ts"), map_location="cpu")
        saved = torch.load(directory / "model.pt", map_location="cpu", weights_only=False)  # edgekit's own entry
        model = saved["model"]
        for name, value in saved["attributes"].items():
            setattr(model, name, value)
        return model

    def qat_state(self, float_model=None) -> QuantizationAware:
        """The PT2E quantizer QAT trains with (a fixed configuration, rebuilt rather than stored) and
        the fine-tuned float weights ONNX Runtime quantizes."""
        return QuantizationAware(float_model=float_model, quantizer=qat.make_quantizer())



BACKEND = TorchBackend()

__all__ = ["BACKEND", "TorchBackend", "to_nchw"]
