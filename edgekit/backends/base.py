"""The Backend contract: what edgekit needs from a training framework.

A backend works on in-memory models of its framework and numpy arrays in the dataset's canonical
channels-last layout. Every method that changes a model returns a new one: the model passed in is
never trained or modified (TF-MOT wrappers share layers, so backends clone first).

The abstract methods are exactly what the run (edgekit.run) calls; `preflight` is shared, with
the per-framework parts (`make_student`, `check_channels_prunable`) as hooks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

import numpy as np

from edgekit.artifact import QuantizationAware
from edgekit.compute import Compute, gpu_index, requested_gpu
from edgekit.errors import InputError
from edgekit.zoo import Head, kind_of

FREEZE = ("none", "base", "norm")  # what `Backend.train` can keep fixed: nothing, the base, normalization

ProgressFactory = Callable[[str, int], Any]  # (description, total) -> context manager yielding advance(n)


class Backend(ABC):
    """One training framework (`framework` is its name: "keras", "torch")."""

    framework: str

    @abstractmethod
    def load(self, path: Path, factory: Optional[str] = None, trust_code: bool = False,
             custom_objects: Optional[str] = None) -> Any:
        """Load the teacher's model file or directory; raise InputError naming the file when it cannot.
        `factory` (torch: "pkg.module:function" building the module for a state_dict), `trust_code`
        (Keras: allow Lambda layers and custom_objects) and `custom_objects` (Keras: "module[:dict]"
        defining the model's custom layers) are refused at validation for the other framework."""

    @abstractmethod
    def build(self, arch: str, width: float, input_shape: tuple[int, ...], outputs: int, task: str,
              seed: int, head: Optional[Head] = None, weights: Optional[Path] = None) -> Any:
        """A new zoo model (`edgekit.zoo` names), untrained but for a base arch's (`edgekit.zoo.BASES`)
        pretrained base, loaded from the local file `weights` (never downloaded); `head` shapes a base
        arch's head. InputError when the file does not fit the base or the input is too small."""

    @abstractmethod
    def train(self, model: Any, dataset: Any, epochs: int, batch_size: int, learning_rate: float, seed: int,
              progress: Optional[ProgressFactory] = None, description: str = "train", freeze: str = "none") -> Any:
        """A trained copy of `model` (the input is not modified). `freeze` (FREEZE) keeps part of a base
        arch's model fixed while the rest trains: "base" trains only the head (the base's BatchNorm in
        inference mode), "norm" fine-tunes all but BatchNorm. The copy returned is trainable throughout."""

    @abstractmethod
    def gpus(self) -> int:
        """How many GPUs the framework sees (0 where it sees none, or has no GPU build)."""

    def resolve_compute(self, config: Any, where: str = "compute.device") -> Compute:
        """The `Compute` a recipe's `compute:` block asks for on this machine: `auto` is the first GPU
        the framework sees, else the CPU; InputError when a named GPU is not visible."""
        gpus = self.gpus() if config.device != "cpu" else 0
        if config.device == "auto":
            device = "cuda:0" if gpus else "cpu"
        elif requested_gpu(config.device):
            index = gpu_index(config.device)
            if index >= gpus:
                seen = f"sees {gpus} GPU{'s' if gpus != 1 else ''}" if gpus else "sees no GPU"
                raise InputError(f"{where}: {config.device} was asked for, but {self.framework} {seen} here. "
                                 "Use device: auto (a GPU when there is one) or cpu, or check CUDA_VISIBLE_DEVICES "
                                 f"and that the installed {self.framework} build has CUDA.")
            device = f"cuda:{index}"
        else:
            device = "cpu"
        return Compute(device=device, precision=config.precision)

    @abstractmethod
    def computing(self, compute: Compute) -> ContextManager[None]:
        """Within the block, every training function of the backend trains on `compute`'s device and
        precision; the models they return are float32, on the CPU, as outside it."""

    @abstractmethod
    def join(self, worker: Any, compute: Compute) -> ContextManager[Any]:
        """Join the training group `worker` (edgekit.workers.Worker) belongs to, with the
        framework's collectives, for the block; yields its `edgekit.workers.Group`. Every training
        function within trains on this worker's share of each batch and keeps the workers' weights
        in step; the models they return are plain (undistributed) ones. The framework's engine is
        named in `recipe.support.DISTRIBUTED_ENGINES`; validation refuses workers for the others."""

    @abstractmethod
    def clone(self, model: Any) -> Any:
        """An independent copy of `model` with the same weights."""

    @abstractmethod
    def predict(self, model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float outputs of the in-framework model for channels-last `x`."""

    @abstractmethod
    def describe(self, model: Any) -> dict:
        """{"name": str, "params": int, "layers": int} and, where the model records them,
        "input_shape" and "output_shape"."""

    @abstractmethod
    def check_compatible(self, model: Any, dataset: Any, task: str, where: str = "teacher") -> None:
        """Raise InputError when the data's sample shape or label range does not fit the model."""

    @abstractmethod
    def save_cached(self, model: Any, directory: Path) -> None:
        """Write `model` into the new directory `directory` for the stage cache, in a form that loads
        without unpickling; raise (the entry is then not stored) when the model has no such form."""

    @abstractmethod
    def load_cached(self, directory: Path, context: Any, quantization_aware: bool = False) -> Any:
        """The model `save_cached` wrote to `directory`; `context` (the RunContext: recipe, dataset)
        says how to rebuild what the files do not hold. Raise InputError when the entry is not one
        this backend wrote."""

    @abstractmethod
    def qat_state(self, float_model: Any = None) -> QuantizationAware:
        """What a quantization-aware model restored from the cache carries for its exporters."""

    # ---- the shared preflight and its hooks --------------------------------------------------

    def preflight(self, model: Any, context: Any) -> None:
        """Refuse, before any training, stages the model they will receive cannot take: channel
        pruning of a topology the framework cannot rebuild is named here, not after the teacher
        trained, and so is a stage that cannot take one of the model's layers (`StageConfig.layer_refusals`),
        and a quantize stage's `keep_float` / `overrides` pattern that names no layer.
        A distill stage hands its student to the stages after it."""
        recipe = context.recipe
        current = model
        for i, stage in enumerate(recipe.stages):
            if stage.kind == "distill":
                current = self.make_student(stage.distill, current, context.dataset, recipe)
            refused = stage.config.refused_layers(self.framework)
            for name, class_name in self.layer_classes(current) if refused else ():
                kind = kind_of(self.framework, class_name)
                if kind in refused:
                    raise InputError(f"{recipe.where('stages', i)}: {stage.label} ({stage.config.summary()}) "
                                     f"cannot take the {class_name} layer '{name}' of {self.prune_subject(current)}: {refused[kind]}")
            try:
                stage.config.check_layers(self.weight_layers(current))
            except ValueError as exc:
                raise InputError(f"{recipe.where('stages', i)}: {stage.kind}: {exc}") from None
            if stage.kind == "prune" and stage.prune.structure == "channels":
                try:
                    self.check_channels_prunable(current, context.dataset)
                except InputError as exc:
                    raise InputError(f"{recipe.where('stages', i)}: structure: channels cannot prune "
                                     f"{self.prune_subject(current)}: {exc}") from None

    @abstractmethod
    def make_student(self, config: Any, teacher: Any, dataset: Any, recipe: Any) -> Any:
        """The untrained student a distill stage with `config` trains from `teacher`."""

    @abstractmethod
    def check_channels_prunable(self, model: Any, dataset: Any) -> None:
        """Raise InputError saying why channel pruning cannot rebuild `model`."""

    @abstractmethod
    def layer_classes(self, model: Any) -> list[tuple[str, str]]:
        """(layer name, class name) of every layer of `model`, nested ones included, so the preflight
        finds the layers a stage refuses (`edgekit.zoo.LAYER_KINDS` names their classes)."""

    @abstractmethod
    def equalize(self, model: Any) -> tuple[Any, list[dict]]:
        """(a copy of `model` with cross-layer equalization applied to every pair of layers its graph
        allows, one record per pair), or (`model`, []) when there is none (`edgekit.equalization`).
        The model's function is unchanged; `model` itself is not modified."""

    @abstractmethod
    def correct_bias(self, model: Any, samples: np.ndarray, per_channel: bool = True) -> tuple[Any, list[dict]]:
        """(a copy of `model` whose convolution and dense layers' biases are corrected for the mean
        shift int8 rounding of their weights causes, per output channel unless `per_channel` is false,
        with each layer's input mean measured on the float model over `samples` (calibration inputs,
        channels-last as `predict` takes them), one record `{"layer", "largest_shift"}` per layer,
        named as `weight_layers` names it), or (`model`, []) when no layer applies
        (`edgekit.bias_correction`). The float function moves by at most the rounding error;
        `model` itself is not modified."""

    @abstractmethod
    def weight_layers(self, model: Any) -> list[str]:
        """Names of the layers of `model` that hold a weight matrix or kernel (rank >= 2), nested ones
        included, in model order: what `quantize.keep_float` / `overrides` patterns are matched
        against (Keras layer names, torch module paths)."""

    def prune_subject(self, model: Any) -> str:
        """How the preflight's channel-pruning message names the model."""
        return "this model"


def check_labels_fit(dataset: Any, outputs: Optional[int], task: str, where: str) -> None:
    """Raise InputError when a class id in the data has no output of the model."""
    if task != "classification" or outputs is None:
        return
    largest = int(max(dataset.y_train.max(initial=0), dataset.y_test.max(initial=0)))
    if largest >= outputs:
        raise InputError(f"{where}: the data has class id {largest} but the model has only {outputs} outputs "
                         f"(classes 0..{outputs - 1}). Check data.keys.y_train / y_test or the model.")


class TrainModuleBackend(Backend):
    """Training, copying and prediction through the backend's own `train` module (`_train`) and,
    for a frozen base, its `transfer` module (`_transfer`), so each backend only says how its
    framework does them."""

    _train: Any
    _transfer: Any  # the backend's transfer-learning module: `fit(..., freeze)` for "base" and "norm"
    _distributed: Any  # the backend's multi-worker module: `join(worker, compute)`

    def train(self, model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train",
              freeze="none"):
        if freeze == FREEZE[0]:
            return self._train.fit(model, dataset, epochs, batch_size, learning_rate, seed, progress, description)
        return self._transfer.fit(model, dataset, epochs, batch_size, learning_rate, seed, progress, description,
                                  freeze)

    def gpus(self) -> int:
        return self._train.gpus()

    def computing(self, compute):
        return self._train.computing(compute)

    def join(self, worker, compute):
        return self._distributed.join(worker, compute)

    def clone(self, model):
        return self._train.clone(model)

    def predict(self, model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self._train.predict(model, x, batch_size)
