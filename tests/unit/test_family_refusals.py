"""Stages that cannot take a model family's layers are refused at validation, before anything trains
(edgekit.recipe.support.check_layers, from each stage's `layer_refusals` and edgekit.zoo.ARCH_LAYERS)."""

from __future__ import annotations

import pytest

from edgekit.config import ARCHS
from edgekit.errors import RecipeError
from edgekit.recipe import parse_recipe
from edgekit.recipe.support import check_support
from edgekit.zoo import ARCH_LAYERS, ARCHITECTURES, LAYER_KINDS


def _recipe(framework: str, arch: str, stages: list):
    return parse_recipe({"version": 1, "teacher": {"framework": framework, "build": {"arch": arch}},
                         "stages": stages})


def test_the_recipe_accepts_every_zoo_arch_and_every_arch_layer_kind_is_known():
    assert set(ARCHS) == set(ARCHITECTURES)
    assert {kind for kinds in ARCH_LAYERS.values() for kind in kinds} <= set(LAYER_KINDS)


@pytest.mark.parametrize("arch, layer", [("transformer", "MultiHeadAttention"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_keras_qat_of_attention_and_recurrent_archs_is_refused_naming_the_layer(arch, layer):
    with pytest.raises(RecipeError, match=rf"stages\[0\]: quantize.qat \(qat int8 .*\) cannot take the {layer} layers of the "
                                          rf"{arch} arch \(keras\): TF-MOT.*method: ptq"):
        check_support(_recipe("keras", arch, [{"quantize": {"method": "qat"}}]))
    assert check_support(_recipe("keras", arch, [{"quantize": {"method": "ptq"}}])) == "keras"


@pytest.mark.parametrize("framework", ["keras", "torch"])
@pytest.mark.parametrize("arch", ["transformer", "lstm", "gru"])
def test_channel_pruning_of_attention_and_recurrent_archs_is_refused_in_both_frameworks(framework, arch):
    layer = LAYER_KINDS[ARCH_LAYERS[arch][0]][framework]
    with pytest.raises(RecipeError, match=rf"stages\[0\]: prune \(channels to 0.5.*\) cannot take the {layer} layers.*"
                                          r"structure: unstructured"):
        check_support(_recipe(framework, arch, [{"prune": {"structure": "channels"}}]))
    check_support(_recipe(framework, arch, [{"prune": {"structure": "unstructured"}}]))


def test_the_check_follows_the_distilled_student():
    """Stages after a distill stage take its student: an LSTM student refuses QAT, an MLP one does not."""
    to_lstm = [{"distill": {"student": {"arch": "lstm", "width": 0.5}}}, {"quantize": {"method": "qat"}}]
    with pytest.raises(RecipeError, match=r"stages\[1\]: quantize.qat \(.*\) cannot take the LSTM layers of the lstm arch"):
        check_support(_recipe("keras", "cnn_small", to_lstm))
    to_mlp = [{"distill": {"student": {"arch": "mlp"}}}, {"prune": {"structure": "channels"}}]
    check_support(_recipe("torch", "transformer", to_mlp))


def test_a_refusal_keyed_by_a_variant_prefix_applies_to_that_variant_only():
    """torch GRU: PT2E QAT is refused; PTQ int8 (int8 or float I/O) and float16 are not."""
    with pytest.raises(RecipeError, match=r"quantize.qat \(.*GRU layers of the gru arch \(torch\)"
                                          r".*method: ptq"):
        check_support(_recipe("torch", "gru", [{"quantize": {"method": "qat"}}]))
    for quantize in ({"precision": "int8"}, {"precision": "int8", "io": "float32"}, {"precision": "float16"}):
        check_support(_recipe("torch", "gru", [{"quantize": {"method": "ptq", **quantize}}]))
    check_support(_recipe("keras", "gru", [{"quantize": {"method": "ptq", "precision": "int8"}}]))
