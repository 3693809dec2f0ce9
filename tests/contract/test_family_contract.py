"""The Transformer-encoder and recurrent families of the zoo, written once for every framework
(issue 11): each builds with the same parameter count in every framework, for classification and
regression, and each backend finds a refused layer in a loaded model before anything trains. That
each family learns the digits and that its int8 .tflite (LiteRT) and .onnx (ONNX Runtime) keep the
accuracy is tested through `edgekit compress` in tests/e2e/test_families_cli.py; stages a family
cannot take are refused at validation (tests/unit/test_family_refusals.py, and the e2e file).
"""

from __future__ import annotations

import pytest

from edgekit.backends import available_frameworks, get_backend
from tests.helpers import FAMILY_PARAMS, digits_dataset

DATA = digits_dataset()
FRAMEWORKS = available_frameworks()


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("arch", sorted(FAMILY_PARAMS))
def test_the_family_has_the_same_parameter_count_in_every_framework(framework, arch):
    backend = get_backend(framework)
    model = backend.build(arch, 1.0, DATA.input_shape, 10, "classification", seed=0)
    assert backend.describe(model)["params"] == FAMILY_PARAMS[arch]
    regression = backend.build(arch, 1.0, DATA.input_shape, 1, "regression", seed=0)
    assert tuple(backend.predict(regression, DATA.x_test[:3]).shape) == (3, 1)


def test_a_loaded_keras_model_with_a_refused_layer_is_refused_before_training(tmp_path):
    """`validate --deep` (and compress, through the same preflight) reads the model's layers: a loaded
    Keras LSTM with a QAT stage exits 2 naming the layer, before anything trains."""
    from edgekit.errors import InputError
    from edgekit.recipe import parse_recipe
    from edgekit.run.validation import check_deep

    get_backend("keras").build("lstm", 0.25, DATA.input_shape, 10, "classification", seed=0).save(tmp_path / "rnn.keras")
    recipe = parse_recipe({"version": 1, "data": {"source": "digits", "scale": 0.0625},
                           "teacher": {"path": str(tmp_path / "rnn.keras")},
                           "stages": [{"quantize": {"method": "qat"}}]})
    with pytest.raises(InputError, match=r"stages\[0\]: quantize.qat \(.*\) cannot take the LSTM layer 'lstm(_\d+)?' of "
                                         r"'lstm_w0.25': TF-MOT"):
        check_deep(recipe, "keras")


@pytest.mark.parametrize("arch, layer", [("transformer", "MultiheadAttention layer 'encoder1.self_attn'"),
                                         ("gru", "GRU layer 'gru.rnn'")])
def test_the_torch_preflight_names_a_refused_layer_of_the_module(arch, layer):
    """A torch module's layers are found by class (`layer_classes`), as for a teacher loaded with a factory."""
    from edgekit.errors import InputError
    from edgekit.recipe import parse_recipe
    from edgekit.run.context import RunContext

    backend = get_backend("torch")
    model = backend.build(arch, 0.25, DATA.input_shape, 10, "classification", seed=0)
    recipe = parse_recipe({"version": 1, "teacher": {"framework": "torch", "path": "model.pt", "factory": "m:f"},
                           "stages": [{"prune": {"structure": "channels"}}]})
    with pytest.raises(InputError, match=rf"stages\[0\]: prune \(channels.*\) cannot take the {layer} of this model"):
        backend.preflight(model, RunContext(recipe, DATA, "torch"))
