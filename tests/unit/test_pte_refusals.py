"""`export.formats: [.., pte]` at validation: refused for Keras teachers with the reason, and the
plans / options ExecuTorch's XNNPACK lowering cannot produce refused for torch ones, before anything
is loaded or trained (no torch, no executorch imported here)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli import main
from edgekit.recipe import load_recipe
from edgekit.recipe.support import check_support
from tests.helpers import support_refusal

KERAS_REASON = "ExecuTorch runs PyTorch programs; a Keras model cannot be lowered to .pte"


def recipe_file(tmp_path: Path, body: str, teacher: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text("version: 1\n" + teacher + textwrap.dedent(body), encoding="utf-8")
    return path


def test_a_keras_teacher_is_refused_pte_with_the_reason_and_the_line(tmp_path):
    recipe = load_recipe(recipe_file(tmp_path, "export:\n  formats: [tflite, pte]\n", "teacher:\n  path: m.keras\n"))

    message = support_refusal(recipe)

    assert KERAS_REASON in message and "use tflite or onnx" in message
    assert "line 5, export.formats" in message and "not possible for keras teachers" in message


def test_validate_exits_2_for_a_keras_teacher_with_pte(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    path = recipe_file(tmp_path, "export:\n  formats: [pte]\n", "teacher:\n  path: m.keras\n")
    # pytest-xdist runs other files (tests/torch) in this process too: only what validate loads counts
    loaded_before = {m for m in ("torch", "executorch") if m in sys.modules}

    result = CliRunner().invoke(main, ["validate", str(path)])

    assert result.exit_code == 2, result.output
    assert KERAS_REASON in " ".join(result.output.split())
    assert {m for m in ("torch", "executorch") if m in sys.modules} <= loaded_before


def test_a_torch_teacher_may_export_pte_and_it_is_not_a_default_format(tmp_path):
    torch_teacher = "teacher:\n  path: m.pt2\n"
    with_pte = load_recipe(recipe_file(tmp_path, "export:\n  formats: [tflite, onnx, pte]\n"
                                                 "evaluate:\n  runtimes: [litert, onnxruntime, executorch]\n"
                                                 "stages:\n  - quantize: {method: qat}\n", torch_teacher))
    assert check_support(with_pte) == "torch"
    assert load_recipe(recipe_file(tmp_path, "", torch_teacher)).export.formats == ["tflite", "onnx"]


@pytest.mark.parametrize("quantize, key, words", [
    ("{precision: int16x8}", "stages[0].quantize.precision", "no 16-bit activations"),
    ("{precision: float16}", "stages[0].quantize.precision", "float16"),
    ("{calibration: entropy}", "stages[0].quantize.calibration", "its own observers"),
    ("{calibration: percentile}", "stages[0].quantize.calibration", "its own observers"),
])
def test_plans_xnnpack_cannot_run_are_refused_for_pte(tmp_path, quantize, key, words):
    body = f"export:\n  formats: [onnx, pte]\nstages:\n  - quantize: {quantize}\n"
    recipe = load_recipe(recipe_file(tmp_path, body, "teacher:\n  path: m.pt2\n"))

    message = support_refusal(recipe)

    assert key in message and words in message and "not possible for torch teachers" in message


def test_sparse_export_is_refused_for_pte(tmp_path):
    body = "export:\n  formats: [onnx, pte]\n  sparse: true\n"
    message = support_refusal(load_recipe(recipe_file(tmp_path, body, "teacher:\n  path: m.pt2\n")))
    assert "export.sparse" in message and "dense weights" in message
