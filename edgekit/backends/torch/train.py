"""Training torch models: the teacher from `teacher.train` and the fine-tuning of every stage.

The twin of `backends/keras/train.py`: Adam, cross-entropy on logits for classification (or on
log-probabilities when the model ends in a softmax), mean squared error for regression, shuffled
mini-batches, one progress step per epoch showing loss and accuracy (or MAE). Arrays arrive
channels-last and are transposed to NCHW here (`layout.to_nchw`).

`fit` trains a copy and never changes its input; stages that own a model (distillation, pruning,
QAT) call `fit_module`, which trains in place and takes a `loss_fn` (distillation's loss) and an
`after_step` hook (pruning re-applies its masks after every optimizer step).

Training follows the run's compute (`computing`, `current`): the model, the modules its loss
needs (`companions`: distillation's teacher) and every batch go to the compute's device, and come
back to the CPU when training ends, even when it fails. Mixed precision runs each forward pass and
loss under `torch.autocast` in the compute's 16-bit float (bfloat16 on the CPU, float16 on a GPU,
whose gradients `torch.amp.GradScaler` scales); the weights stay float32 throughout, so what a
stage returns is the same CPU float32 model float32 training gives, and exporters see no
16-bit weights. Validation and `predict` run in float32 on whatever device the model is on.
"""

from __future__ import annotations

import copy
import io
import random
import warnings
from typing import Callable, Iterator, Optional

import numpy as np

from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.layout import to_nchw
from edgekit.backends.torch.loader import EpochBatches, batch_loader, default_workers
from edgekit.backends.torch.compute import autocasting, computing, current, device_of, gpus, grad_scaler, placed
from edgekit.compute import Compute, count
from edgekit.data.ondisk import on_disk
from edgekit.errors import InputError

LossFn = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], "torch.Tensor"]

def set_seed(seed: int) -> None:
    """Seed torch, numpy and Python's `random` (as `keras.utils.set_random_seed` does)."""
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % (2 ** 32))
    random.seed(int(seed))


def clone(model: nn.Module) -> nn.Module:
    """An independent copy with the same weights; `model` is not modified.

    TorchScript modules are copied by a save/load round trip: a deepcopy of one has non-leaf
    parameters that no optimizer accepts."""
    if isinstance(model, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(model, buffer)
        buffer.seek(0)
        return torch.jit.load(buffer, map_location="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's pytree deprecations, for exported graphs
        return copy.deepcopy(model)


def param_count(model: nn.Module) -> int:
    """Every parameter (trainable or frozen) plus BatchNorm running mean and variance.

    The running statistics are counted so the number matches Keras' `count_params` (which counts
    BatchNormalization's moving mean/variance as non-trainable weights); `num_batches_tracked` and
    other buffers (pruning masks, constants) are not. An `nn.LSTM`'s second bias (`bias_hh`, which
    the gates only ever add to `bias_ih`) is not counted either, so it matches Keras' one LSTM bias.
    """
    total = sum(p.numel() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            total += sum(b.numel() for b in (module.running_mean, module.running_var) if b is not None)
        if isinstance(module, nn.LSTM) and module.bias:
            # the gates see b_ih + b_hh, one vector's worth of freedom: counted once, as Keras' LSTM bias
            total -= sum(p.numel() for name, p in module.named_parameters() if name.startswith("bias_hh"))
    return int(total)


def set_mode(model: nn.Module, training: bool) -> None:
    """`model.train(training)`, also for `torch.export` modules, whose own `.train()` raises.

    A BatchNorm whose parameters are all frozen (`requires_grad=False`: a frozen transfer-learning
    base) stays in inference mode when training, as a frozen Keras BatchNormalization does."""
    try:
        model.train(training)
    except NotImplementedError:
        pass
    if training:  # a normalization layer whose parameters are all frozen keeps its statistics (as in Keras)
        for module in model.modules():
            parameters = list(module.parameters(recurse=False))
            if isinstance(module, nn.modules.batchnorm._NormBase) and parameters and \
                    not any(p.requires_grad for p in parameters):
                module.eval()
    if isinstance(model, torch.fx.GraphModule):  # a deepcopy keeps the graph but not the raising .train()
        _set_exported_mode(model, training)


# (op, index of its `training` argument) in a torch.export graph
_MODE_ARGS = (("batch_norm", 5), ("dropout", 2), ("feature_dropout", 2))


def _set_exported_mode(model, training: bool) -> None:
    """Flip the `training` flag of the batch-norm and dropout calls in an exported graph.

    Done by hand rather than with torchao's `allow_exported_model_train_eval`, whose pattern
    rewrite resets batch-norm epsilon to 1e-5. Graphs already lowered to inference-only ops
    (`_native_batch_norm_legit_no_training`) keep inference behaviour: their statistics stay fixed.
    """
    ops = {getattr(torch.ops.aten, name).default: index for name, index in _MODE_ARGS}
    changed = False
    for node in model.graph.nodes:
        index = ops.get(node.target) if node.op == "call_function" else None
        if index is not None and len(node.args) > index and node.args[index] != training:
            node.args = node.args[:index] + (bool(training),) + node.args[index + 1:]
            changed = True
    if changed:
        model.recompile()
    for module in model.modules():
        module.training = bool(training)


def input_placeholder(model: nn.Module):
    """The graph node of the first input of a `torch.export` / PT2E graph, or None for other models."""
    if not isinstance(model, torch.fx.GraphModule):
        return None
    return next((node for node in model.graph.nodes if node.op == "placeholder"), None)


def static_batch(model: nn.Module) -> Optional[int]:
    """The only batch size the model accepts: that of a `torch.export` graph whose input's batch
    dimension was recorded as a number (a dynamic one is recorded as a symbol), else None."""
    node = input_placeholder(model)
    shape = getattr(node.meta.get("val"), "shape", None) if node is not None else None
    if shape is not None and len(shape) > 0 and isinstance(shape[0], int):
        return int(shape[0])
    return None


def _first_tensor(out):
    """The model output; a tuple/list/dict output contributes its first entry."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


first_tensor = _first_tensor


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Float32 outputs for channels-last `x`, in eval mode and batches, without gradients, on the
    model's device (the CPU but while a stage trains on a GPU)."""
    if len(x) == 0:
        return np.zeros((0,), np.float32)
    was_training = bool(getattr(model, "training", False))
    set_mode(model, False)
    fixed = static_batch(model)
    batch_size = fixed or batch_size
    device = device_of(model)
    outputs = []
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                chunk = to_nchw(np.asarray(x[i:i + batch_size], dtype=np.float32))
                real = len(chunk)
                if fixed and real < fixed:  # pad to the exported batch size, then drop the padding
                    chunk = np.concatenate([chunk, np.zeros((fixed - real,) + chunk.shape[1:], np.float32)])
                out = _first_tensor(model(torch.from_numpy(chunk).to(device)))
                outputs.append(out.detach().float().cpu().numpy()[:real])
    finally:
        if was_training:
            set_mode(model, True)
    return np.concatenate(outputs, axis=0).astype(np.float32)


def ends_with_softmax(model: nn.Module) -> bool:
    """True when the last submodule is a softmax (the model outputs probabilities, not logits)."""
    last = None
    for module in model.modules():
        last = module
    return isinstance(last, (nn.Softmax, nn.Softmax2d))


def default_loss(model: nn.Module, task: str) -> Callable:
    """`loss(outputs, y)`: cross-entropy on logits (or probabilities), or MSE for regression."""
    if task == "classification":
        if ends_with_softmax(model):
            return lambda out, y: nn.functional.nll_loss(torch.log(out.clamp_min(1e-7)), y)
        return nn.functional.cross_entropy
    return lambda out, y: nn.functional.mse_loss(_match(out, y), y)


def _match(out, y):
    """A `(n, 1)` regression output against `(n,)` targets: compare as `(n,)`."""
    if out.ndim == 2 and out.shape[1] == 1 and y.ndim == 1:
        return out[:, 0]
    return out


def _targets(y: np.ndarray, task: str):
    if task == "classification":
        return torch.from_numpy(np.asarray(y).astype(np.int64).reshape(-1))
    return torch.from_numpy(np.asarray(y, dtype=np.float32))


def _metric(out, y, task: str) -> float:
    """Sum of correct predictions (classification) or of absolute errors (regression) in a batch."""
    if task == "classification":
        return float((out.argmax(dim=-1) == y).sum())
    return float((_match(out, y) - y).abs().mean() * len(y))


def _validate(model, dataset) -> dict:
    if len(dataset.x_val) == 0:
        return {}
    out = torch.from_numpy(predict(model, dataset.x_val))
    y = _targets(dataset.y_val, dataset.task)
    if dataset.task == "classification":
        return {"val_accuracy": _metric(out, y, dataset.task) / len(y)}
    return {"val_mae": _metric(out, y, dataset.task) / len(y)}


def _step(model, xb, yb, loss_of: LossFn, optimizer, scaler, compute: Compute):
    """One optimizer step on a batch; returns the batch's float32 outputs and loss, detached.

    The forward pass and the loss run under `autocasting(compute)`; the outputs are cast to
    float32 before the loss, so losses and metrics are computed in float32 whatever the compute."""
    optimizer.zero_grad(set_to_none=True)
    with autocasting(compute):
        out = _first_tensor(model(xb)).float()
        loss = loss_of(out, xb, yb)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return out.detach(), loss.detach()


def fit_module(model: nn.Module, dataset, epochs: int, batch_size: int, learning_rate: float, seed: int,
               progress=None, description: str = "train", loss_fn: Optional[LossFn] = None,
               after_step: Optional[Callable[[nn.Module], None]] = None, companions=()) -> None:
    """Train `model` in place with Adam on the current compute (`current`); it is left in eval
    mode, on the CPU, with float32 weights.

    `loss_fn(outputs, x_batch_nchw, y_batch)` replaces the default loss: it gets float32 outputs
    and batches on the compute's device. `after_step(model)` runs after every optimizer step.
    `companions` are other modules the loss runs (distillation's teacher): they move to the device
    and back with the model. The same seed gives the same batches and the same weights, whether the
    samples are in memory or on disk (read ahead by a DataLoader's processes: `loader`).

    In a group of several workers (`distributed.join`) every worker draws the same global batches
    and trains on its share of each (`split_batch`), under DistributedDataParallel; the steps and
    samples it trained are counted for the report (`edgekit.compute.count`).
    """
    from edgekit.backends.torch import distributed

    compute = current()
    rank, workers = distributed.place()
    set_seed(seed)
    generator = torch.Generator().manual_seed(int(seed))
    task = dataset.task
    y = _targets(dataset.y_train, task)
    n = len(dataset.x_train)
    base_loss = default_loss(model, task)
    loss_of = loss_fn or (lambda out, xb, yb: base_loss(out, yb))
    batch_size = static_batch(model) or max(1, int(batch_size))
    _check_split(model, batch_size, workers)
    sampler = EpochBatches(n, batch_size, generator, rank, workers, bool(static_batch(model)))
    batches = _batch_source(dataset.x_train, sampler, workers)
    tally = {"steps": 0, "samples": 0}

    with placed((model, *companions), compute.device):
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=float(learning_rate))
        scaler = grad_scaler(compute)
        trainer = distributed.wrap(model, compute.device)

        def run_epoch() -> dict:
            set_mode(model, True)
            loss_sum = metric_sum = seen = 0.0
            for rows, index in batches():
                xb, yb = rows.to(compute.device), y[index].to(compute.device)
                out, loss = _step(trainer, xb, yb, loss_of, optimizer, scaler, compute)
                if after_step is not None:
                    after_step(model)
                loss_sum += float(loss) * len(index)
                metric_sum += _metric(out, yb, task)
                seen += len(index)
                tally["steps"] += 1
                tally["samples"] += len(index)
            set_mode(model, False)
            seen = max(seen, 1.0)
            logs = {"loss": loss_sum / seen, ("accuracy" if task == "classification" else "mae"): metric_sum / seen}
            return {**logs, **_validate(model, dataset)}

        try:
            if progress is None:
                for _ in range(int(epochs)):
                    run_epoch()
            else:
                with progress(description, int(epochs)) as advance:
                    for _ in range(int(epochs)):
                        advance(1, **run_epoch())
        finally:
            set_mode(model, False)
    count(tally["steps"], tally["samples"], batch_size, -(-batch_size // workers))


def _batch_source(x, sampler: EpochBatches, workers: int) -> Callable[[], Iterator]:
    """`batches()`: one epoch's `(rows, index)` pairs, the NCHW float32 samples of `x` at each of
    `sampler`'s batches and the batch's indices (for the labels), in the sampler's order.

    In-memory samples are converted once and indexed; samples on disk (a DiskArray) are read by a
    DataLoader's processes (`loader.batch_loader`) ahead of the step, so a split larger than memory
    trains with a few batches in memory. Both give the same batches, values and order."""
    if on_disk(x):
        reader = batch_loader(x, sampler, default_workers(workers))
        return lambda: iter(reader)
    whole = torch.from_numpy(to_nchw(np.asarray(x, dtype=np.float32)))
    return lambda: ((whole[index], index) for index in sampler.epoch())


def _check_split(model: nn.Module, batch_size: int, workers: int) -> None:
    """InputError when the workers' shares of a batch cannot run: an exported program with a fixed
    batch size takes only whole batches of it."""
    if workers > 1 and static_batch(model):
        raise InputError(f"compute.workers: this exported program takes only batches of {batch_size}, but "
                         f"{workers} workers each train on a share of every batch. Export it with a dynamic "
                         "batch dimension (torch.export.Dim) or train with compute.workers: 1.")


def fit(model: nn.Module, dataset, epochs: int, batch_size: int, learning_rate: float, seed: int,
        progress=None, description: str = "train") -> nn.Module:
    """Train a copy of `model` on the train split (validating on the validation split); returns it."""
    trained = clone(model)
    fit_module(trained, dataset, epochs, batch_size, learning_rate, seed, progress, description)
    return trained


def steps_per_epoch(dataset, batch_size: int) -> int:
    return max(1, int(np.ceil(len(dataset.x_train) / batch_size)))


__all__ = ["autocasting", "clone", "computing", "current", "default_loss", "device_of", "first_tensor", "fit",
           "fit_module", "grad_scaler", "input_placeholder", "param_count", "placed", "predict", "set_mode",
           "set_seed", "static_batch", "steps_per_epoch"]
