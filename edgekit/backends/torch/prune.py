"""Pruning for torch: magnitude masks (unstructured, 2:4) or real channel removal (Torch-Pruning).

The twin of `backends/keras/prune.py`, with the same report details:
- unstructured: per-layer magnitude masks on the weights of Conv1d/Conv2d/Linear layers (and the
  weight matrices of attention and LSTM/GRU layers, `_module_weights`), following
  TF-MOT's schedules: polynomial (initial → final sparsity with power 3 over the first 3/4 of the
  fine-tuning steps, then held) or constant. Masks are recomputed every `frequency` steps and
  re-applied after every optimizer step; the result is a plain module whose pruned weights are
  zeros (no `weight_orig` / `weight_mask`, no hooks), so every exporter takes it.
- 2:4: in every group of 4 consecutive weights along the input dimension (Linear: dim 1; conv:
  dim 1 at each kernel position) the 2 largest magnitudes are kept. Layers whose input dimension is
  not a multiple of 4 (a first conv on 1 or 3 channels, a depthwise conv) stay dense and are listed.
- channels: Torch-Pruning's dependency graph removes the lowest-L2 filters and every coupled
  channel (the next layer's inputs, BatchNorm, depthwise convs, residual adds), giving a smaller
  dense model that is then fine-tuned. The layer producing the model's output is never pruned.

    >>> result = prune(artifact, PruneConfig(sparsity=0.8), ctx)
    >>> result.details["pruned_layers"]
    ['conv1', 'conv2', 'dense1', 'head']

The input model is cloned first; it is never changed.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgekit.artifact import Artifact
from edgekit.errors import InputError
from edgekit.backends.torch import train
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.layout import to_nchw

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


# ---------------------------------------------------------------------------------------------
# Magnitude masks (unstructured, 2:4).


def _targets(model) -> list[tuple[str, "torch.nn.Parameter"]]:
    """(layer name, weight) of every prunable layer, in module order.

    Modules without layer objects (a `torch.export` graph, TorchScript) fall back to their 2-D to
    4-D parameters named `*weight`, whose dim 1 is the input dimension for linear and conv ops."""
    found = [target for name, module in model.named_modules() for target in _module_weights(name, module)]
    if found:
        return found
    return [(name[:-len(".weight")] if name.endswith(".weight") else name, p) for name, p in model.named_parameters()
            if name.endswith("weight") and p.ndim in (2, 3, 4)]


def _module_weights(name: str, module) -> list[tuple[str, "torch.nn.Parameter"]]:
    """The weights magnitude pruning masks in one module: a conv's or linear layer's `weight`, an
    attention's packed query/key/value projection (its output projection is an nn.Linear), and each
    weight matrix of an LSTM/GRU/RNN (input-to-hidden and hidden-to-hidden), as TF-MOT prunes them."""
    if isinstance(module, PRUNABLE) and isinstance(getattr(module, "weight", None), torch.Tensor):
        return [(name, module.weight)]
    if isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
        return [(f"{name}.in_proj", module.in_proj_weight)]
    if isinstance(module, nn.RNNBase):
        return [(f"{name}.{p}", w) for p, w in module.named_parameters(recurse=False) if p.startswith("weight_")]
    return []


def magnitude_mask(weight: "torch.Tensor", sparsity: float) -> "torch.Tensor":
    """A 0/1 mask zeroing the `round(sparsity * n)` smallest magnitudes of `weight` (exactly that many)."""
    n = weight.numel()
    k = int(round(float(sparsity) * n))
    mask = torch.ones(n, dtype=weight.dtype, device=weight.device)
    if k > 0:
        order = torch.argsort(weight.detach().abs().reshape(-1), stable=True)
        mask[order[:min(k, n)]] = 0
    return mask.reshape(weight.shape)


def two_four_applicable(weight: "torch.Tensor") -> bool:
    """2:4 needs the input dimension (dim 1) to hold whole groups of 4."""
    return weight.ndim >= 2 and int(weight.shape[1]) % 4 == 0


def two_four_mask(weight: "torch.Tensor") -> "torch.Tensor":
    """Keep the 2 largest magnitudes in every group of 4 consecutive weights along dim 1."""
    moved = weight.detach().abs().movedim(1, -1)  # (out, *kernel, in)
    groups = moved.reshape(-1, 4)
    keep = torch.topk(groups, 2, dim=1).indices
    mask = torch.zeros_like(groups).scatter_(1, keep, 1.0)
    return mask.reshape(moved.shape).movedim(-1, 1).contiguous()


def polynomial_sparsity(step: int, initial: float, final: float, end_step: int, power: int = 3) -> float:
    """TF-MOT's PolynomialDecay: final + (initial − final)·(1 − step/end)^power, held after end_step."""
    progress = min(1.0, max(0.0, step / max(1, end_step)))
    return final + (initial - final) * (1.0 - progress) ** power


class MaskSchedule:
    """Masks for the target weights: computed at step 0 and every `frequency` steps, applied every step."""

    def __init__(self, targets, config, total_steps: int):
        self.targets = targets
        self.config = config
        self.total_steps = max(1, int(total_steps))
        self.frequency = max(1, min(100, self.total_steps // 20))
        self.end_step = max(1, int(0.75 * self.total_steps))
        self.step = 0
        self.masks: list = [None] * len(targets)
        self.update()

    def sparsity(self) -> float:
        c = self.config
        if c.schedule == "constant":
            return float(c.sparsity)
        return polynomial_sparsity(self.step, float(c.initial_sparsity), float(c.sparsity), self.end_step)

    def update(self) -> None:
        target = self.sparsity()
        for i, (_, weight) in enumerate(self.targets):
            self.masks[i] = (two_four_mask(weight) if self.config.structure == "2:4"
                             else magnitude_mask(weight, target))
        self.apply()

    def apply(self) -> None:
        """Zero the masked weights. A mask computed before training moved the weights to a GPU moves
        there once (and is kept there), so later steps multiply on the weight's own device."""
        with torch.no_grad():
            for i, (_, weight) in enumerate(self.targets):
                self.masks[i] = self.masks[i].to(weight.device, weight.dtype)
                weight.mul_(self.masks[i])

    def after_step(self, model) -> None:
        self.step += 1
        if self.step % self.frequency == 0:
            self.update()
        else:
            self.apply()

    def finish(self) -> None:
        """The final masks: the target sparsity exactly, whatever step training stopped at."""
        self.step = max(self.step, self.end_step)
        self.update()


def _magnitude(artifact: Artifact, config, ctx) -> Artifact:
    model = train.clone(artifact.model)
    targets, skipped = [], []
    for name, weight in _targets(model):
        if config.structure == "2:4" and not two_four_applicable(weight):
            skipped.append(name)
        else:
            targets.append((name, weight))
    data = ctx.dataset
    total_steps = train.steps_per_epoch(data, config.batch_size) * config.epochs
    schedule = MaskSchedule(targets, config, total_steps)
    train.fit_module(model, data, config.epochs, config.batch_size, config.learning_rate, ctx.recipe.seed,
                     progress=ctx.progress.task, description=f"prune {config.structure}",
                     after_step=schedule.after_step)
    schedule.finish()
    details = {"structure": config.structure, "target_sparsity": config.sparsity,
               "pruned_layers": [name for name, _ in targets], "left_dense": skipped}
    return artifact.evolve("prune", model=model, pruned=config.structure, details=details)


# ---------------------------------------------------------------------------------------------
# Channels (Torch-Pruning).

_CHANNEL_HINT = "Use structure: unstructured or 2:4, which keep every channel."


def _tp():
    import torch_pruning as tp

    return tp


def _example(dataset) -> "torch.Tensor":
    return torch.from_numpy(to_nchw(np.asarray(dataset.x_train[:1], dtype=np.float32)))


def _layers_in_call_order(model, example) -> list[tuple[str, nn.Module]]:
    """The prunable layers in the order the forward pass calls them (the last one makes the output)."""
    names = {module: name for name, module in model.named_modules()}
    called: list = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: called.append(mod))
             for m in model.modules() if isinstance(m, PRUNABLE)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    seen, ordered = set(), []
    for module in called:
        if module not in seen:
            seen.add(module)
            ordered.append((names[module], module))
    return ordered


def _out_channels(module) -> int:
    return int(module.out_features if isinstance(module, nn.Linear) else module.out_channels)


def _pruner(model, example, sparsity: float):
    """(Torch-Pruning MetaPruner, its layers in call order, the output layer) for `model`."""
    tp = _tp()
    if isinstance(model, torch.jit.ScriptModule) or not any(isinstance(m, PRUNABLE) for m in model.modules()):
        raise InputError(
            "the model has no nn.Conv2d / nn.Linear layers to remove channels from (a torch.export program or "
            "TorchScript file keeps only a graph). Load it from a state_dict with teacher.factory instead. " + _CHANNEL_HINT)
    layers = _layers_in_call_order(model, example)
    if not layers:
        raise InputError("no nn.Conv2d / nn.Linear layer runs in the model's forward pass. " + _CHANNEL_HINT)
    output_layer = layers[-1][1]
    pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.MagnitudeImportance(p=2),
                                  pruning_ratio=float(sparsity), ignored_layers=[output_layer])
    return pruner, layers, output_layer


def _describe_failure(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"


def prune_channels(model, example, sparsity: float) -> tuple[nn.Module, dict]:
    """Remove `sparsity` of the channels of every layer but the output one, in place; returns (model, info)."""
    model.eval()
    before = train.param_count(model)
    pruner, layers, output_layer = _pruner(model, example, sparsity)
    widths = {name: _out_channels(m) for name, m in layers if m is not output_layer}
    pruner.step()
    changed = {name: {"before": widths[name], "after": _out_channels(m)} for name, m in layers
               if name in widths and _out_channels(m) != widths[name]}
    return model, {"params_before": before, "params_after": train.param_count(model), "layers": changed}


def check_prunable(model, dataset) -> None:
    """Raise InputError naming the layer or op when Torch-Pruning cannot remove channels from `model`.

    Builds the dependency graph on a clone, prunes half the channels and runs one sample through the
    result (a `view` with hard-coded sizes, for example, only fails there). Nothing is trained."""
    example = _example(dataset)
    try:
        copy = train.clone(model)
    except Exception as exc:
        raise InputError(f"the model cannot be copied for channel pruning ({_describe_failure(exc)}). "
                         + _CHANNEL_HINT) from None
    train.set_mode(copy, False)
    try:
        pruner, layers, output_layer = _pruner(copy, example, 0.5)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"Torch-Pruning cannot trace the model's dependency graph ({_describe_failure(exc)}). "
                         + _CHANNEL_HINT) from None
    current = "the dependency graph"
    try:
        for group in pruner.step(interactive=True):
            current = ", ".join(sorted({_layer_name(copy, dep.target.module) for dep, _ in group}))
            group.prune()
        current = "the forward pass after pruning"
        with torch.no_grad():
            copy(example)
    except Exception as exc:
        raise InputError(f"removing channels breaks the model at {current} ({_describe_failure(exc)}). "
                         + _CHANNEL_HINT) from None
    return None


def _layer_name(model, module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name or type(module).__name__
    return type(module).__name__


def _channels(artifact: Artifact, config, ctx) -> Artifact:
    model = train.clone(artifact.model)
    try:
        model, removal = prune_channels(model, _example(ctx.dataset), config.sparsity)
    except InputError as exc:
        raise InputError(f"prune structure: channels: {exc}") from None
    train.fit_module(model, ctx.dataset, config.epochs, config.batch_size, config.learning_rate, ctx.recipe.seed,
                     progress=ctx.progress.task, description="prune channels (fine-tune)")
    details = {"structure": "channels", "target_sparsity": config.sparsity, **removal}
    # A smaller dense model: later stages treat it as unpruned (nothing sparse to preserve).
    return artifact.evolve("prune", model=model, details=details)


STRUCTURES: dict[str, Callable] = {"unstructured": _magnitude, "2:4": _magnitude, "channels": _channels}


def prune(artifact: Artifact, config, ctx) -> Artifact:
    return STRUCTURES[config.structure](artifact, config, ctx)


__all__ = ["check_prunable", "magnitude_mask", "polynomial_sparsity", "prune", "prune_channels", "two_four_mask"]
