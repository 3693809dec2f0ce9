"""The Transformer-encoder and recurrent families of the torch zoo on the bundled digits (issue 11):
each builds with the parameter count its Keras twin has, learns the task, and its PTQ int8 .tflite
(LiteRT-Torch, on LiteRT) and .onnx (ONNX Runtime) keep the accuracy. Stages a family cannot take are
refused at validation (tests/unit/test_family_refusals.py, tests/e2e/test_families_cli.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("litert_torch")

from edgekit.backends import get_backend  # noqa: E402
from tests.helpers import FAMILY_PARAMS, digits_dataset, int8_accuracies  # noqa: E402

backend = get_backend("torch")
DATA = digits_dataset()
WIDTH, EPOCHS = 0.5, 12
MIN_ACCURACY = 0.85  # measured (width 0.5, 12 epochs, lr 0.003): transformer 0.961, lstm 0.892, gru 0.928


@pytest.mark.parametrize("arch", sorted(FAMILY_PARAMS))
def test_the_family_has_the_parameter_count_of_its_keras_twin(arch):
    model = backend.build(arch, 1.0, DATA.input_shape, 10, "classification", seed=0)
    assert backend.describe(model)["params"] == FAMILY_PARAMS[arch]
    regression = backend.build(arch, 1.0, DATA.input_shape, 1, "regression", seed=0)
    assert tuple(backend.predict(regression, DATA.x_test[:3]).shape) == (3, 1)


@pytest.fixture(scope="module", params=sorted(FAMILY_PARAMS))
def trained(request):
    model = backend.build(request.param, WIDTH, DATA.input_shape, 10, "classification", seed=0)
    return request.param, backend.train(model, DATA, EPOCHS, 32, 0.003, seed=0)


def test_the_family_learns_digits_and_int8_files_keep_the_accuracy(trained, tmp_path):
    arch, model = trained
    found = int8_accuracies("torch", model, DATA, tmp_path)
    print(arch, found)
    assert found["torch"] >= MIN_ACCURACY, (arch, found)
    for fmt in ("tflite", "onnx"):
        assert found[fmt] >= found["torch"] - 0.02, (arch, found)


@pytest.mark.parametrize("arch, layer", [("transformer", "MultiheadAttention layer 'encoder1.self_attn'"),
                                         ("gru", "GRU layer 'gru.rnn'")])
def test_the_preflight_names_a_refused_layer_of_the_module(arch, layer):
    """A torch module's layers are found by class (`layer_classes`), as for a teacher loaded with a factory."""
    from edgekit.errors import InputError
    from edgekit.recipe import parse_recipe
    from edgekit.run.context import RunContext

    model = backend.build(arch, 0.25, DATA.input_shape, 10, "classification", seed=0)
    recipe = parse_recipe({"version": 1, "teacher": {"framework": "torch", "path": "model.pt", "factory": "m:f"},
                           "stages": [{"prune": {"structure": "channels"}}]})
    with pytest.raises(InputError, match=rf"stages\[0\]: prune \(channels.*\) cannot take the {layer} of this model"):
        backend.preflight(model, RunContext(recipe, DATA, "torch"))
