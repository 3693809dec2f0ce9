"""`edgekit search` refuses a bad `search:` block before anything trains: exit 2, the key named.

Each case edits recipes/digits_search.yaml (as text, through --set or a copy) and runs the real CLI
through click's CliRunner; none of them reaches Ray, Optuna or a framework, so they run in seconds.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgekit.cli import main

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "digits_search.yaml"


@pytest.fixture(autouse=True)
def _restore_process_state(monkeypatch):
    handler, interrupt = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    monkeypatch.delenv("EDGEKIT_DEBUG", raising=False)
    yield
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, interrupt)


def search(tmp_path: Path, edit=None, *args: str):
    """Run `edgekit search` on a copy of the example recipe changed by `edit(data)`."""
    data = yaml.safe_load(RECIPE.read_text())
    data["teacher"]["path"] = str(REPO / data["teacher"]["path"])
    if edit is not None:
        edit(data)
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    return CliRunner().invoke(main, ["search", str(recipe), "--output", str(tmp_path / "run"), *args],
                              catch_exceptions=False)


def space(path: str, values):
    return lambda data: data["search"]["space"].__setitem__(path, values)


CASES = {
    "unknown path": (space("stages.0.distill.student.widht", [0.25]),
                     ["search.space.stages.0.distill.student.widht", "did you mean 'width'"]),
    "index past the stages": (space("stages.7.prune.sparsity", [0.5]),
                              ["search.space.stages.7.prune.sparsity", "not an index"]),
    "empty choices": (space("stages.1.prune.sparsity", []), ["search.space.stages.1.prune.sparsity", "empty"]),
    "low above high": (space("stages.1.prune.sparsity", {"low": 0.9, "high": 0.5}),
                       ["search.space", "low (0.9) is above high (0.5)"]),
    "a value the key refuses": (space("stages.1.prune.sparsity", [0.5, 1.5]),
                                ["search.space.stages.1.prune.sparsity", "1.5", "less than 1"]),
    "a range end the key refuses": (space("stages.0.distill.student.width", {"low": 0.25, "high": 9.0}),
                                    ["search.space.stages.0.distill.student.width", "9.0"]),
    "a choice of the wrong type": (space("stages.2.quantize.precision", ["int8", "int4"]),
                                   ["search.space.stages.2.quantize.precision", "int4"]),
    "a single value": (space("stages.1.prune.sparsity", 0.5), ["search.space.stages.1.prune.sparsity",
                                                               "list of choices"]),
    "log range from zero": (space("stages.1.prune.sparsity", {"low": 0.0, "high": 0.5, "log": True}),
                            ["search.space", "log: true needs low > 0"]),
    "a frozen key": (space("name", ["a", "b"]), ["search.space.name", "cannot be searched"]),
    "unknown objective": (lambda d: d["search"].__setitem__("objectives", ["size", "speed"]),
                          ["search.objectives", "unknown objective 'speed'"]),
    "objective of a format not exported": (
        lambda d: (d["export"].__setitem__("formats", ["tflite"]), d["gates"].pop("max_size"),
                   d["search"].__setitem__("objectives", ["size.onnx", "accuracy"])),
        ["search.objectives", "'size.onnx'", "add onnx to export.formats"]),
    "objective of a runtime not run": (
        lambda d: (d["evaluate"].__setitem__("runtimes", ["litert"]),
                   d["search"].__setitem__("objectives", ["size", "latency.onnx"])),
        ["search.objectives", "'latency.onnx'", "runs none of its runtimes"]),
    "mae for classification": (lambda d: d["search"].__setitem__("objectives", ["size", "mae"]),
                               ["search.objectives", "'mae' is not measured for task classification"]),
    "trials below one": (lambda d: d["search"].__setitem__("trials", 0), ["search.trials", "greater than or equal to 1"]),
    "select not an objective": (lambda d: d["search"].__setitem__("select", "latency"),
                                ["search.select", "'latency' is not one of search.objectives"]),
    "no validation split": (lambda d: d["data"].__setitem__("validation_split", 0.0),
                            ["search", "validation split", "data.validation_split"]),
    "population of one": (lambda d: d["search"].__setitem__("population", 1), ["search.population"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_search_block_exits_2_naming_the_key(case, tmp_path):
    edit, expected = CASES[case]

    result = search(tmp_path, edit)

    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.output, (text, result.output)
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.search").exists()


def test_the_search_block_names_its_line(tmp_path):
    result = search(tmp_path, space("stages.1.prune.sparsity", []))

    lines = (tmp_path / "search.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "stages.1.prune.sparsity" in text)
    assert f"line {line}" in result.output


def test_a_recipe_without_a_search_block_is_refused(tmp_path):
    result = search(tmp_path, lambda d: d.pop("search"))

    assert result.exit_code == 2
    assert "no search: block" in result.output


def test_resume_without_an_interrupted_search_is_refused(tmp_path):
    result = search(tmp_path, None, "--resume")

    assert result.exit_code == 2
    assert "no interrupted search to continue" in result.output


def test_compress_ignores_the_search_block():
    from edgekit.recipe import load_recipe

    recipe = load_recipe(RECIPE)

    assert recipe.search is not None and recipe.search.trials == 16
    assert recipe.stages[0].distill.student.width == 0.5  # the recipe as written, not a searched value
