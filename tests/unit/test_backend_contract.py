"""The Backend contract (edgekit.backends.base) and the RunContext's lazily resolved backend,
without importing a framework."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from edgekit.backends.base import Backend
from edgekit.data import Dataset
from edgekit.errors import InputError
from edgekit.recipe import parse_recipe
from edgekit.run import context as context_module
from edgekit.run.context import RunContext
from tests.helpers import ROOT

CALLED_BY_THE_RUN = {"load", "build", "train", "clone", "predict", "describe", "check_compatible", "save_cached",
                     "load_cached", "qat_state", "make_student", "check_channels_prunable", "layer_classes",
                     "weight_layers", "equalize", "correct_bias", "gpus", "computing", "join"}


def test_the_abstract_methods_are_what_the_run_calls():
    assert Backend.__abstractmethods__ == CALLED_BY_THE_RUN


class _Fake(Backend):
    """Every abstract method as a stub that records make_student / check_channels_prunable calls."""

    framework = "fake"

    def __init__(self, refuse: str = "", layers: tuple = ()):
        self.calls, self.refuse, self.layers = [], refuse, list(layers)

    def layer_classes(self, model):
        return self.layers

    def weight_layers(self, model):
        return [name for name, _ in self.layers]

    def make_student(self, config, teacher, dataset, recipe):
        self.calls.append(("student", teacher))
        return "student"

    def check_channels_prunable(self, model, dataset):
        self.calls.append(("channels", model))
        if self.refuse:
            raise InputError(self.refuse)


for _name in CALLED_BY_THE_RUN - {"make_student", "check_channels_prunable", "layer_classes", "weight_layers"}:
    setattr(_Fake, _name, lambda self, *args, **kwargs: None)
_Fake.__abstractmethods__ = frozenset()


def _context(stages: list) -> RunContext:
    recipe = parse_recipe({"version": 1, "teacher": {"build": {"arch": "cnn_tiny"}}, "stages": stages})
    x, y = np.zeros((4, 8, 8, 1), np.float32), np.zeros(4, np.int64)
    return RunContext(recipe, Dataset(x, y, x[:0], y[:0], x, y, x), "fake")


def test_a_backend_missing_a_method_cannot_be_made():
    class Partial(Backend):
        framework = "partial"

    with pytest.raises(TypeError, match="abstract"):
        Partial()


def test_preflight_checks_channel_pruning_on_the_distilled_student():
    backend = _Fake()
    stages = [{"distill": {"student": {"arch": "cnn_tiny"}}}, {"prune": {"structure": "channels", "sparsity": 0.5}}]
    backend.preflight("teacher", _context(stages))
    assert backend.calls == [("student", "teacher"), ("channels", "student")]


def test_preflight_names_the_recipe_line_and_the_model():
    backend = _Fake(refuse="a concat joins two branches")
    ctx = _context([{"prune": {"structure": "channels", "sparsity": 0.5}}])
    with pytest.raises(InputError, match=r"^recipe, stages\[0\]: structure: channels cannot prune this model: a concat"):
        backend.preflight("teacher", ctx)


class _FakeKeras(_Fake):
    framework = "keras"


def test_preflight_refuses_a_stage_that_cannot_take_a_layer_of_the_model():
    """A loaded model's layers are checked against the stage's `layer_refusals`, naming layer and class."""
    backend = _FakeKeras(layers=[("dense", "Dense"), ("encoder_attention", "MultiHeadAttention")])
    with pytest.raises(InputError, match=r"stages\[0\]: quantize.qat \(qat int8.*\) cannot take the MultiHeadAttention layer "
                                         r"'encoder_attention' of this model: TF-MOT.*method: ptq"):
        backend.preflight("teacher", _context([{"quantize": {"method": "qat"}}]))
    backend.preflight("teacher", _context([{"quantize": {"method": "ptq"}}]))  # PTQ takes attention
    torch_like = _Fake(layers=[("encoder_attention", "MultiHeadAttention")])  # another framework's names
    torch_like.preflight("teacher", _context([{"quantize": {"method": "qat"}}]))


def test_preflight_refuses_a_keep_float_pattern_that_names_no_layer():
    """Before anything trains: the key, the pattern and the model's layers are named; a pattern that
    matches in full passes, one that only matches part of a name does not."""
    backend = _Fake(layers=[("stem", "Conv2D"), ("block1_conv", "Conv2D"), ("head", "Dense")])
    backend.preflight("teacher", _context([{"quantize": {"keep_float": ["head"], "overrides": {"block.*": "int16x8"}}}]))
    with pytest.raises(InputError, match=r"^recipe, stages\[0\]: quantize: keep_float: 'block' matches no layer .*"
                                         r"Its layers with weights are: stem, block1_conv, head"):
        backend.preflight("teacher", _context([{"quantize": {"keep_float": ["block"]}}]))
    with pytest.raises(InputError, match=r"overrides: 'conv\\d' matches no layer"):
        backend.preflight("teacher", _context([{"quantize": {"overrides": {"conv\\d": "int16x8"}}}]))


def test_the_backend_is_resolved_once_on_first_use(monkeypatch):
    looked_up = []
    monkeypatch.setattr(context_module, "get_backend", lambda name: looked_up.append(name) or _Fake())
    ctx = _context([])
    assert ctx.framework == "fake" and looked_up == []
    assert ctx.backend is ctx.backend and looked_up == ["fake"]


def test_a_context_imports_no_framework():
    """Building a context (as a run served from the stage cache does) leaves TensorFlow and torch unimported."""
    code = ("import sys; from tests.unit.test_backend_contract import _context; ctx = _context([]); "
            "print(ctx.framework, sorted({'tensorflow', 'tf_keras', 'torch'} & set(sys.modules)))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert found.stdout.split() == ["fake", "[]"], found.stdout + found.stderr
