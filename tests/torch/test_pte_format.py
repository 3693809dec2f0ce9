"""Torch -> .pte (ExecuTorch, XNNPACK delegate) through the pte format's export flow, run on the
executorch runtime and read back by its reader and inspector.

One tiny conv net (built here) is lowered once per precision for the whole module (module-scoped
fixture): float32, int8 (XNNPACK's PT2E quantizer), int8 with a layer kept float, and a
quantization-aware int8 model made with edgekit's own PT2E QAT quantizer (LiteRT-Torch's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("executorch")

from edgekit.artifact import Artifact, QuantizationAware  # noqa: E402
from edgekit.errors import InputError, StageError  # noqa: E402
from edgekit.formats.base import ExportOptions  # noqa: E402
from edgekit.formats.files import param_count, weight_sparsity  # noqa: E402
from edgekit.formats.inspect import inspect_model, schema  # noqa: E402
from edgekit.formats.registry import get_format  # noqa: E402
from edgekit.precision import PLANS, plan_for  # noqa: E402
from edgekit.runtimes import get_runtime  # noqa: E402
from tests.runtimes.jsonschema_subset import validate  # noqa: E402

nn = torch.nn


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def images(n: int, seed: int) -> np.ndarray:
    """8x8x1 NHWC float images in [0, 1], as edgekit's calibration samples are."""
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)


def qat_artifact(model: nn.Module, calibration: np.ndarray) -> Artifact:
    """A quantization-aware artifact as edgekit's torch QAT stage makes it (LiteRT-Torch's PT2E QAT
    quantizer, prepare_qat_pt2e, a few observed batches, convert_pt2e), without the fine-tuning."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    from edgekit.backends.torch.qat import make_quantizer

    quantizer = make_quantizer()
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(calibration[:2], (0, 3, 1, 2))))
    graph = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)).module()
    prepared = prepare_qat_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(0, 64, 16):
            prepared(torch.from_numpy(np.ascontiguousarray(np.transpose(calibration[i:i + 16], (0, 3, 1, 2)))))
    converted = convert_pt2e(prepared, fold_quantize=False)
    return Artifact("torch", converted, plan=plan_for("int8", "int8", quantization_aware=True),
                    qat=QuantizationAware(float_model=model, quantizer=quantizer))


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    """{kind: (path, facts)} for float, int8, int8 with `0` kept float, and QAT; plus the model and data."""
    folder = tmp_path_factory.mktemp("pte")
    model, calibration = tiny_cnn(), images(128, 0)
    options = ExportOptions(calibration=calibration)
    artifacts = {
        "float": Artifact("torch", model),
        "int8": Artifact("torch", model, plan=plan_for("int8", "float32")),
        "keep_float": Artifact("torch", model, plan=plan_for("int8", "float32").with_layers({"0": "float"})),
        "qat": qat_artifact(model, calibration),
    }
    files = {}
    for kind, artifact in artifacts.items():
        path, facts = folder / f"{kind}.pte", {}
        get_format("pte").export(artifact, path, options, {}, facts)
        files[kind] = (path, facts)
    return {"files": files, "model": model, "x": images(40, 1)}


def reference(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))).numpy()


def run(path: Path, x: np.ndarray) -> np.ndarray:
    return get_runtime("executorch").open(path).predict(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def test_float_pte_runs_like_torch_on_executorch(lowered):
    path, _ = lowered["files"]["float"]
    session = get_runtime("executorch").open(path)
    assert [t.shape for t in session.inputs] == [[1, 1, 8, 8]] and session.inputs[0].dtype == "float32"
    np.testing.assert_allclose(run(path, lowered["x"]), reference(lowered["model"], lowered["x"]), atol=1e-4)


@pytest.mark.parametrize("kind", ["int8", "keep_float", "qat"])
def test_int8_pte_is_close_to_torch_and_smaller_than_float(lowered, kind):
    path, _ = lowered["files"][kind]
    expected = reference(lowered["model"], lowered["x"])
    got = run(path, lowered["x"])
    assert np.abs(got - expected).max() < 0.05 * (np.abs(expected).max() + 1e-6), kind
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.9, kind
    assert path.stat().st_size < lowered["files"]["float"][0].stat().st_size
    assert param_count(path) == param_count(lowered["files"]["float"][0]) == sum(
        p.numel() for p in lowered["model"].parameters())


def test_inspect_shows_the_ops_delegated_to_xnnpack(lowered):
    float_info = inspect_model(lowered["files"]["float"][0])
    info = inspect_model(lowered["files"]["int8"][0])
    validate(info, schema())
    delegation = info["delegation"]
    assert delegation["backend"] == "XnnpackBackend" and delegation["delegates"] >= 1
    assert {"XNNConv2d", "XNNFullyConnected"} <= set(delegation["delegated_ops"]) and "XNNConvert" in delegation["delegated_ops"]
    assert not any(op.startswith("quantized_decomposed") for op in delegation["non_delegated_ops"])
    assert (info["quantization"]["kind"], float_info["quantization"]["kind"]) == ("int8 (full integer)", "float")
    assert {row["precision"] for row in info["quantization"]["layers"]} == {"int8"}
    assert info["inputs"][0]["shape"] == [1, 1, 8, 8] and info["outputs"][0]["dtype"] == "float32"
    assert info["tensors_by_size"][0]["dtype"] == "int8"
    assert weight_sparsity(lowered["files"]["int8"][0])["elements"] == 8 * 9 + 16 * 8 * 9 + 256 * 32 + 32 * 4


def test_a_layer_kept_float_stays_float_in_the_pte(lowered):
    layers = inspect_model(lowered["files"]["keep_float"][0])["quantization"]["layers"]
    assert [row["precision"] for row in layers].count("float") == 1  # the first conv ("0")
    assert [row["precision"] for row in layers].count("int8") == len(layers) - 1


def test_qat_says_which_path_shipped(lowered):
    choice = lowered["files"]["qat"][1]["quantization_choice"]
    assert choice["chosen"] == "QAT model as trained"  # its weights' quantize folded, XNNPACK takes its q/dq pairs
    assert inspect_model(lowered["files"]["qat"][0])["quantization"]["kind"] == "int8 (full integer)"


def test_every_plan_is_realized_or_refused_for_pte():
    from edgekit.formats.pte.torch import PLANS as PTE

    refused = {r.key.rsplit(".", 1)[1] for r in get_format("pte").writer("torch").refusals
               if r.key.startswith("quantize.precision.")}
    assert {p.name for p in PTE if p is not None} | refused == set(PLANS)
    with pytest.raises(StageError, match="precision: int16x8 for a torch .pte"):
        from edgekit.formats.pte.torch import to_pte

        to_pte(tiny_cnn(), Path("never.pte"), plan_for("int16x8"), images(4, 0))


def test_a_file_that_is_no_program_is_an_input_error(tmp_path):
    bad = tmp_path / "x.pte"
    bad.write_bytes(b"\x00" * 4 + b"ET12" + b"\x01" * 100)
    with pytest.raises(InputError, match=r"x\.pte: not a valid \.pte model"):
        inspect_model(bad)
