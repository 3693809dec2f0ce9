"""Pruning: TF-MOT magnitude pruning (unstructured, 2:4) or channel removal (edgekit's own).

- unstructured: `prune_low_magnitude` with a polynomial (initial → final sparsity over the first 3/4 of
  the fine-tuning steps, then held) or constant schedule; wrappers are stripped before export.
- 2:4: TF-MOT's m-by-n sparsity (2 of every 4 consecutive input weights kept), on the layers whose
  input width allows it; others are left dense and listed in the report.
- channels: the lowest-norm filters and the matching inputs of the next layer are removed, giving a
  smaller dense model that is then fine-tuned (`channels.prune_channels`).
TF-MOT wrappers share layers with the model they wrap, so the input model is cloned first (as a
`train.training_copy`, in the run's precision); each wrapper takes its layer's dtype policy, since it
runs the layer's `call` itself. The model returned is float32 (`train.float_copy`).
"""

from __future__ import annotations

from edgekit.artifact import Artifact
from edgekit.backends.keras import channels, train
from edgekit.backends.keras.compat import keras, tfmot

PRUNABLE = ("Conv2D", "DepthwiseConv2D", "Dense", "MultiHeadAttention", "LSTM", "GRU")
"""Layers TF-MOT prunes (its prune registry): attention's query/key/value/output kernels and the
recurrent layers' kernel and recurrent kernel too, so a Transformer or LSTM is pruned throughout."""


def _schedule(config, total_steps: int):
    sparsity = tfmot().sparsity.keras
    frequency = max(1, min(100, total_steps // 20))
    if config.schedule == "constant" or config.structure == "2:4":
        return sparsity.ConstantSparsity(config.sparsity if config.structure != "2:4" else 0.5,
                                         begin_step=0, frequency=frequency)
    return sparsity.PolynomialDecay(initial_sparsity=config.initial_sparsity, final_sparsity=config.sparsity,
                                    begin_step=0, end_step=max(1, int(0.75 * total_steps)), frequency=frequency)


def _m_by_n_applicable(layer) -> bool:
    """2:4 needs the input dimension of the kernel to hold whole groups of 4."""
    kernel = getattr(layer, "kernel", None)
    if kernel is None or type(layer).__name__ == "DepthwiseConv2D":
        return False
    return int(kernel.shape[-2]) % 4 == 0


def _wrap(model, config, total_steps: int):
    """A copy of `model` with its prunable layers wrapped; returns (model, wrapped names, skipped names).

    The layers of a private training copy are wrapped (and shared) in place, so `model` itself is
    untouched. A wrapper computes in its own policy, so it is given its layer's (mixed or float32)."""
    mot = tfmot().sparsity.keras
    wrapped, skipped = [], []
    options = {"sparsity_m_by_n": (2, 4)} if config.structure == "2:4" else {}

    def wrap(layer):
        if type(layer).__name__ not in PRUNABLE:
            return layer
        if config.structure == "2:4" and not _m_by_n_applicable(layer):
            skipped.append(layer.name)
            return layer
        wrapped.append(layer.name)
        return mot.prune_low_magnitude(layer, pruning_schedule=_schedule(config, total_steps),
                                       dtype=layer.dtype_policy, **options)

    return keras.models.clone_model(train.training_copy(model), clone_function=wrap), wrapped, skipped


def _magnitude(artifact: Artifact, config, ctx) -> Artifact:
    data = ctx.dataset
    total_steps = train.steps_per_epoch(data, config.batch_size) * config.epochs
    wrapped_model, wrapped, skipped = _wrap(artifact.model, config, total_steps)
    train.compile_and_fit(wrapped_model, data, config.epochs, config.batch_size, config.learning_rate,
                          ctx.recipe.seed, ctx.progress.task, f"prune {config.structure}",
                          callbacks=[tfmot().sparsity.keras.UpdatePruningStep()])
    stripped = train.float_copy(tfmot().sparsity.keras.strip_pruning(wrapped_model))
    details = {"structure": config.structure, "target_sparsity": config.sparsity, "pruned_layers": wrapped,
               "left_dense": skipped}
    return artifact.evolve("prune", model=stripped, pruned=config.structure, details=details)


def _channels(artifact: Artifact, config, ctx) -> Artifact:
    smaller, removal = channels.prune_channels(artifact.model, config.sparsity)
    tuned = train.fit(smaller, ctx.dataset, config.epochs, config.batch_size, config.learning_rate,
                      ctx.recipe.seed, ctx.progress.task, "prune channels (fine-tune)")
    details = {"structure": "channels", "target_sparsity": config.sparsity, **removal}
    # A smaller dense model: later stages treat it as unpruned (nothing sparse to preserve).
    return artifact.evolve("prune", model=tuned, details=details)


STRUCTURES = {"unstructured": _magnitude, "2:4": _magnitude, "channels": _channels}


@train.on_device
def prune(artifact: Artifact, config, ctx) -> Artifact:
    return STRUCTURES[config.structure](artifact, config, ctx)
