"""Knowledge distillation for torch: train a student against a frozen teacher.

The twin of `backends/keras/distill.py`, with the same loss and the same report details.
Classification (Hinton et al.): alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(y, s).
Regression: alpha · MSE(t, s) + (1 − alpha) · MSE(y, s). Teachers (or students) that end in a softmax
give probabilities; their logs serve as logits (softmax is invariant to the constant they differ by).

    >>> result = distill(artifact, DistillConfig(student={"arch": "cnn_tiny"}), ctx)
    >>> result.details["student_params"] < result.details["teacher_params"]
    True

The teacher is a private clone in eval mode with gradients off, so the artifact's model is untouched;
it trains alongside the student on the run's compute (`train.fit_module`'s `companions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.artifact import Artifact
from edgekit.errors import InputError
from edgekit.backends.torch import loading, train, zoo
from edgekit.backends.torch.compat import nn, torch

F = nn.functional


def _outputs_of(model, dataset) -> int:
    """The width of the model's output, found by running it on one training sample."""
    out = train.predict(model, dataset.x_train[:1])
    return int(out.shape[-1]) if out.ndim > 1 else 1


def gives_probabilities(model) -> bool:
    """True when the model ends in a softmax (also for a `torch.export` graph whose last op is one)."""
    if train.ends_with_softmax(model):
        return True
    if not isinstance(model, torch.fx.GraphModule):
        return False
    for node in model.graph.nodes:
        if node.op == "output":
            result = node.args[0]
            while isinstance(result, (tuple, list)) and result:
                result = result[0]
            return "softmax" in str(getattr(result, "target", "")) and "log_softmax" not in str(result.target)
    return False


def make_student(config, teacher, dataset, recipe) -> nn.Module:
    """A new zoo student with the dataset's input shape and the teacher's outputs, or a loaded model."""
    student_cfg = config.student
    outputs = _outputs_of(teacher, dataset)
    if student_cfg.path:
        student = loading.load(recipe.resolve_path(student_cfg.path), None, key="distill.student.path")
        got = _outputs_of(student, dataset)
        if got != outputs:
            raise InputError(f"{student_cfg.path}: the student has {got} outputs but the teacher has {outputs} "
                             "(distill.student.path)")
        return student
    train.set_seed(recipe.seed)
    return zoo.build(student_cfg.arch, student_cfg.width, tuple(dataset.input_shape), outputs, recipe.task)


def _logits(out, probabilities: bool):
    return torch.log(out.clamp(1e-7, 1.0)) if probabilities else out


def _like(out, y):
    """A `(n, 1)` output against `(n,)` targets compares as `(n,)`."""
    if out.ndim == 2 and out.shape[1] == 1 and y.ndim == 1:
        return out[:, 0]
    return out


def distillation_loss(student_out, teacher_out, y, temperature: float, alpha: float, task: str,
                      teacher_probabilities: bool = False, student_probabilities: bool = False):
    """The batch-mean distillation loss (see the module docstring)."""
    if task == "regression":
        y = y.to(student_out.dtype)
        s = _like(student_out, y)
        t = _like(teacher_out, y).to(s.dtype)
        return alpha * F.mse_loss(s, t) + (1 - alpha) * F.mse_loss(s, y)
    t = _logits(teacher_out, teacher_probabilities)
    s = _logits(student_out, student_probabilities)
    T = float(temperature)
    soft = F.kl_div(F.log_softmax(s / T, dim=-1), F.softmax(t / T, dim=-1), reduction="batchmean") * (T * T)
    hard = F.cross_entropy(s, y)
    return alpha * soft + (1 - alpha) * hard


def _frozen_forward(teacher) -> Callable:
    """`teacher(x)` without gradients, in eval mode; a static-batch export gets padded chunks.

    The outputs are float32: under mixed precision the teacher computes in 16 bits as the student
    does (it runs inside the training step's autocast), but the loss compares in float32."""
    fixed = train.static_batch(teacher)

    def forward(x):
        with torch.no_grad():
            if not fixed:
                return train._first_tensor(teacher(x)).detach().float()
            outs = []
            for i in range(0, len(x), fixed):
                chunk = x[i:i + fixed]
                real = len(chunk)
                if real < fixed:
                    chunk = torch.cat([chunk, chunk.new_zeros((fixed - real,) + tuple(chunk.shape[1:]))])
                outs.append(train._first_tensor(teacher(chunk)).detach()[:real])
            return torch.cat(outs).float()

    return forward


def _recording(progress, store: dict):
    """A progress factory that forwards to `progress` and keeps the last epoch's figures in `store`."""
    if progress is None:
        return None

    def task(description, total):
        import contextlib

        @contextlib.contextmanager
        def wrapped():
            with progress(description, total) as advance:
                def record(n=1, **fields):
                    store.clear()
                    store.update(fields)
                    advance(n, **fields)
                yield record
        return wrapped()

    return task


def _student_name(student, config) -> str:
    if config.student.path:
        return Path(config.student.path).stem
    return f"{getattr(student, 'arch', type(student).__name__)}"


def distill(artifact: Artifact, config, ctx) -> Artifact:
    """Train a student on the dataset with the frozen teacher `artifact.model`; the teacher is untouched."""
    teacher = train.clone(artifact.model)
    train.set_mode(teacher, False)
    for p in teacher.parameters():
        if p.is_leaf:  # (the teacher also runs under no_grad; this just saves autograd bookkeeping)
            p.requires_grad_(False)
    student = make_student(config, teacher, ctx.dataset, ctx.recipe)
    task = ctx.recipe.task
    teacher_forward = _frozen_forward(teacher)
    t_prob, s_prob = gives_probabilities(teacher), gives_probabilities(student)

    def loss_fn(outputs, x, y):
        return distillation_loss(outputs, teacher_forward(x), y, config.temperature, config.alpha, task, t_prob, s_prob)

    last: dict = {}
    train.fit_module(student, ctx.dataset, config.epochs, config.batch_size, config.learning_rate, ctx.recipe.seed,
                     progress=_recording(ctx.progress.task, last), description="distill", loss_fn=loss_fn,
                     companions=(teacher,))
    details = {"student": _student_name(student, config), "student_params": train.param_count(student),
               "teacher_params": train.param_count(artifact.model)}
    if last:
        details["final_epoch"] = {k: round(float(v), 5) for k, v in last.items() if isinstance(v, (int, float, np.floating))}
    return artifact.evolve("distill", model=student, details=details)


__all__ = ["distill", "distillation_loss", "make_student"]
