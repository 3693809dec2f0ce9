"""The stage contract, written once for every framework: each stage the registry says a framework
implements returns a new artifact, leaves the model it was given untouched, keeps the model accurate
and sets the artifact state it declares. A new stage or framework is covered here automatically (or
fails loudly until `SETTINGS` says how to run it quickly).

Framework-specific behaviour (TF-MOT's QAT schemes, PT2E graphs, channel-pruning topology checks,
the distillation loss) is tested in tests/keras and tests/torch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

from edgekit.artifact import Artifact
from edgekit.backends import available_frameworks, get_backend
from edgekit.data import Dataset
from edgekit.recipe import DistillConfig, PruneConfig
from edgekit.run.context import RunContext
from edgekit.stages import STAGE_CONFIGS, implemented_labels, methods, run_stage
from tests.helpers import band_dataset, stage_context, trained_artifact

# label -> (configuration for a quick run on the tiny band data set, accuracy it must keep)
SETTINGS: dict[str, tuple[dict, float]] = {
    "distill": ({"student": {"arch": "cnn_tiny", "width": 1.0}, "epochs": 15, "learning_rate": 0.01}, 0.9),
    "prune": ({"sparsity": 0.75, "epochs": 3}, 0.85),
    "cluster": ({"clusters": 8, "epochs": 1}, 0.85),
    "quantize.ptq": ({}, 0.85),
    "quantize.qat": ({"epochs": 1}, 0.85),
}
CASES = [(fw, label) for fw in available_frameworks() for label in sorted(implemented_labels(fw))]


@dataclass
class Kit:
    """What the contract needs to know about one framework's models."""

    framework: str
    backend: Any
    snapshot: Callable[[Any], Any]  # a copy of a model's weights
    same: Callable[[Any, Any], bool]  # snapshot, model -> the model still has exactly those weights
    params: Callable[[Any], int]
    kernels: Callable[[Any], list[tuple[str, np.ndarray]]]  # conv/dense weights, input dimension last
    leftovers: Callable[[Any], list[str]]  # training scaffolding (pruning wrappers, masks) left in a model
    student_name: Callable[[str, float], str]  # distill's details["student"] for a zoo student

    def context(self, data: Dataset) -> RunContext:
        return stage_context(data, self.framework)

    def accuracy(self, model, data: Dataset) -> float:
        return float((self.backend.predict(model, data.x_test).argmax(1) == data.y_test).mean())

    def train(self, arch: str, width: float, data: Dataset, epochs: int, outputs: int = 4) -> Artifact:
        return trained_artifact(self.framework, data, epochs, arch, width, outputs)


def _keras_kit() -> Kit:
    backend = get_backend("keras")
    return Kit(
        "keras", backend,
        snapshot=lambda model: [w.copy() for w in model.get_weights()],
        same=lambda before, model: all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())),
        params=lambda model: int(model.count_params()),
        kernels=lambda model: [(layer.name, np.moveaxis(layer.kernel.numpy(), -2, -1))
                               for layer in model.layers if hasattr(layer, "kernel")],
        leftovers=lambda model: [layer.name for layer in model.layers if "prune_low_magnitude" in layer.name],
        student_name=lambda arch, width: f"{arch}_w{width:g}",
    )


def _torch_kit() -> Kit:
    torch = pytest.importorskip("torch")
    backend = get_backend("torch")

    def same(before, model) -> bool:
        after = model.state_dict()
        return before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)

    def leftovers(model) -> list[str]:
        names = [name for name, _ in model.named_parameters()] + list(model.state_dict())
        masks = [n for n in names if "weight_orig" in n or "weight_mask" in n]
        return masks + [name for name, m in model.named_modules() if m._forward_pre_hooks]

    return Kit(
        "torch", backend,
        snapshot=lambda model: {k: v.detach().clone() for k, v in model.state_dict().items()},
        same=same,
        params=lambda model: sum(p.numel() for p in model.parameters()),
        kernels=lambda model: [(name, np.moveaxis(m.weight.detach().numpy(), 1, -1))
                               for name, m in model.named_modules()
                               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))],
        leftovers=leftovers,
        student_name=lambda arch, width: arch,
    )


KITS = {"keras": _keras_kit, "torch": _torch_kit}
TEACHER_EPOCHS = {"keras": 6, "torch": 4}


@pytest.fixture(scope="module", params=list(available_frameworks()))
def framework(request) -> str:
    return request.param


_TEACHERS: dict[str, tuple[Kit, Dataset, Artifact]] = {}
_RUNS: dict[tuple[str, str], tuple[Any, Artifact, bool]] = {}


def _teacher(framework: str) -> tuple[Kit, Dataset, Artifact]:
    """A small cnn_small trained on the band data set, once per framework."""
    if framework not in _TEACHERS:
        kit = KITS[framework]()
        data = band_dataset()
        _TEACHERS[framework] = kit, data, kit.train("cnn_small", 1.0, data, TEACHER_EPOCHS[framework])
    return _TEACHERS[framework]


def _config(label: str):
    method = methods()[label]
    cls = next(cls for cls in STAGE_CONFIGS.values() if label in cls.methods)
    return cls.model_validate({**method.options, **SETTINGS[label][0]})


def _run(framework: str, label: str) -> tuple[Any, Artifact, bool]:
    """(config, result, whether the teacher kept its weights) of one stage on the teacher, run once."""
    if (framework, label) not in _RUNS:
        kit, data, teacher = _teacher(framework)
        config = _config(label)
        before = kit.snapshot(teacher.model)
        result = run_stage(teacher, config, kit.context(data))
        _RUNS[framework, label] = config, result, kit.same(before, teacher.model)
    return _RUNS[framework, label]


def test_every_registered_stage_has_contract_settings():
    every = {label for cls in STAGE_CONFIGS.values() for label in cls.methods}
    assert every == set(SETTINGS), "add a quick configuration for each new stage method to SETTINGS"
    assert every == {label for fw in available_frameworks() for label in implemented_labels(fw)}, \
        "a stage method no framework implements"


@pytest.mark.parametrize("framework, label", CASES)
def test_stage_keeps_the_contract(framework, label):
    kit, data, teacher = _teacher(framework)
    config, result, teacher_unchanged = _run(framework, label)
    assert isinstance(result, Artifact) and result is not teacher
    assert teacher_unchanged, "a stage must never change the model it was given"
    assert result.framework == framework
    assert result.history == teacher.history + (config.key,) and result.name == config.key
    assert kit.accuracy(result.model, data) >= SETTINGS[label][1]
    for state in methods()[label].produces:
        assert getattr(result, state) is not None, state
    assert isinstance(result.details, Mapping)
    if "plan" in methods()[label].produces:
        assert result.plan == config.plan()
    assert not kit.leftovers(result.model)


def test_distill_trains_a_smaller_student(framework):
    if "distill" not in implemented_labels(framework):
        pytest.skip(f"{framework} does not implement distill")
    kit, data, teacher = _teacher(framework)
    config, result, _ = _run(framework, "distill")
    assert kit.params(result.model) < kit.params(teacher.model) / 4
    details = result.details
    assert details["student_params"] == kit.params(result.model)
    assert details["teacher_params"] == kit.params(teacher.model)
    assert details["student"] == kit.student_name(config.student.arch, config.student.width)


def test_regression_distills_to_the_teacher_outputs(framework):
    if "distill" not in implemented_labels(framework):
        pytest.skip(f"{framework} does not implement distill")
    kit = KITS[framework]()
    data = band_dataset(task="regression")
    teacher = kit.train("mlp", 0.5, data, epochs=10, outputs=1)
    config = DistillConfig(student={"arch": "mlp", "width": 0.25}, epochs=10, learning_rate=0.003)
    result = run_stage(teacher, config, kit.context(data))
    mae = float(np.abs(kit.backend.predict(result.model, data.x_test)[:, 0] - data.y_test).mean())
    assert mae < 0.05


@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_unstructured_pruning_reaches_the_target_sparsity(framework, schedule):
    if "prune" not in implemented_labels(framework):
        pytest.skip(f"{framework} does not implement prune")
    kit, data, teacher = _teacher(framework)
    if schedule == "polynomial":
        _, result, teacher_unchanged = _run(framework, "prune")
    else:
        before = kit.snapshot(teacher.model)
        result = run_stage(teacher, PruneConfig(sparsity=0.75, schedule=schedule, epochs=3), kit.context(data))
        teacher_unchanged = kit.same(before, teacher.model)
    assert teacher_unchanged
    assert not kit.leftovers(result.model), "pruning wrappers and masks are stripped"
    for name, kernel in kit.kernels(result.model):
        assert (kernel == 0).mean() == pytest.approx(0.75, abs=0.02), name
    assert kit.accuracy(result.model, data) >= 0.85
    assert result.pruned == "unstructured"


def test_two_four_pruning_keeps_two_of_every_four(framework):
    if "prune" not in implemented_labels(framework):
        pytest.skip(f"{framework} does not implement prune")
    kit, data, teacher = _teacher(framework)
    result = run_stage(teacher, PruneConfig(structure="2:4", epochs=1), kit.context(data))
    pruned = result.details["pruned_layers"]
    assert pruned and result.details["left_dense"]  # the first conv has 1 input channel
    kernels = dict(kit.kernels(result.model))
    for name in pruned:
        groups = kernels[name].reshape(-1, 4)  # groups of 4 along the input dimension
        assert ((groups != 0).sum(axis=1) <= 2).all(), name
    assert kit.accuracy(result.model, data) >= 0.85
    assert result.pruned == "2:4"


def test_channel_pruning_gives_a_smaller_dense_model(framework):
    if "prune" not in implemented_labels(framework):
        pytest.skip(f"{framework} does not implement prune")
    kit, data, teacher = _teacher(framework)
    before = kit.snapshot(teacher.model)
    result = run_stage(teacher, PruneConfig(structure="channels", sparsity=0.5, epochs=3), kit.context(data))
    assert kit.same(before, teacher.model)
    assert kit.params(result.model) < 0.6 * kit.params(teacher.model)
    assert result.details["params_after"] == kit.params(result.model)
    assert kit.backend.predict(result.model, data.x_test[:2]).shape == (2, 4)
    assert kit.accuracy(result.model, data) >= 0.85
    assert result.pruned is None  # a dense model: nothing sparse for later stages to keep
