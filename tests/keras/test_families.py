"""The Transformer-encoder and recurrent families of the Keras zoo on the bundled digits (issue 11):
each builds with the parameter count its torch twin has, learns the task, and its PTQ int8 .tflite
(LiteRT) and .onnx (ONNX Runtime) keep the accuracy. Stages a family cannot take are refused at
validation (tests/unit/test_family_refusals.py, tests/e2e/test_families_cli.py)."""

from __future__ import annotations

import pytest

from edgekit.backends import get_backend
from tests.helpers import FAMILY_PARAMS, digits_dataset, int8_accuracies

backend = get_backend("keras")
DATA = digits_dataset()
WIDTH, EPOCHS = 0.5, 12
MIN_ACCURACY = 0.85  # measured (width 0.5, 12 epochs, lr 0.003): transformer 0.978, lstm 0.908, gru 0.936


@pytest.mark.parametrize("arch", sorted(FAMILY_PARAMS))
def test_the_family_has_the_parameter_count_of_its_torch_twin(arch):
    model = backend.build(arch, 1.0, DATA.input_shape, 10, "classification", seed=0)
    assert backend.describe(model)["params"] == FAMILY_PARAMS[arch]
    regression = backend.build(arch, 1.0, DATA.input_shape, 1, "regression", seed=0)
    assert regression.output_shape == (None, 1) and regression.layers[-1].name == "output"


@pytest.fixture(scope="module", params=sorted(FAMILY_PARAMS))
def trained(request):
    model = backend.build(request.param, WIDTH, DATA.input_shape, 10, "classification", seed=0)
    return request.param, backend.train(model, DATA, EPOCHS, 32, 0.003, seed=0)


def test_the_family_learns_digits_and_int8_files_keep_the_accuracy(trained, tmp_path):
    arch, model = trained
    found = int8_accuracies("keras", model, DATA, tmp_path)
    print(arch, found)
    assert found["keras"] >= MIN_ACCURACY, (arch, found)
    for fmt in ("tflite", "onnx"):
        assert found[fmt] >= found["keras"] - 0.02, (arch, found)


def test_a_loaded_model_with_a_refused_layer_is_refused_before_training(tmp_path):
    """`validate --deep` (and compress, through the same preflight) reads the model's layers: a loaded
    Keras LSTM with a QAT stage exits 2 naming the layer, before anything trains."""
    from edgekit.errors import InputError
    from edgekit.recipe import parse_recipe
    from edgekit.run.validation import check_deep

    backend.build("lstm", 0.25, DATA.input_shape, 10, "classification", seed=0).save(tmp_path / "rnn.keras")
    recipe = parse_recipe({"version": 1, "data": {"source": "digits", "scale": 0.0625},
                           "teacher": {"path": str(tmp_path / "rnn.keras")},
                           "stages": [{"quantize": {"method": "qat"}}]})
    with pytest.raises(InputError, match=r"stages\[0\]: quantize.qat \(.*\) cannot take the LSTM layer 'lstm(_\d+)?' of "
                                         r"'lstm_w0.25': TF-MOT"):
        check_deep(recipe, "keras")
