"""The stage cache: an unchanged recipe reuses every trained step and exported file, a changed later
stage re-runs only from there, and --no-cache trains everything. (The speed-up itself is measured
in benchmarks/, not asserted here.)

The first run of each recipe is its example run (tests/e2e/conftest.py), made with an empty stage
cache of its own; the tests re-run against that cache."""

from __future__ import annotations

import pytest

from tests.helpers import read_report, run_edgekit, snapshot

pytestmark = pytest.mark.slow


def _cached(report: dict) -> dict:
    return {s["name"]: bool(s.get("cached")) for s in report["stages"]}


@pytest.mark.parametrize("recipe", ["digits_from_scratch.yaml", "digits_torch.yaml"])
def test_an_unchanged_recipe_reuses_everything(recipe, tmp_path, example_run, example_cache):
    first_run, first = example_run(recipe)
    second = run_edgekit("compress", f"recipes/{recipe}", "--output", str(tmp_path / "b"), "-q",
                         "--cache-dir", str(example_cache(recipe)))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    before, after = read_report(first_run), read_report(tmp_path / "b")
    assert not any(_cached(before).values())
    trained = [name for name in _cached(after) if not name.startswith("evaluate ") or name == "evaluate teacher"]
    assert all(_cached(after)[name] for name in trained)
    for name in ("model.tflite", "model.onnx", "baseline.tflite"):
        assert (first_run / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    figures = lambda r: [(a["name"], a.get("accuracy"), a.get("agreement"), a.get("bytes")) for a in r["artifacts"]]
    assert figures(before) == figures(after)


def test_changing_a_later_stage_reruns_only_from_it(tmp_path, example_run, example_cache):
    assert example_run("digits_full.yaml")[1].returncode == 0
    changed = run_edgekit("compress", "recipes/digits_full.yaml", "-q", "--cache-dir", str(example_cache("digits_full.yaml")),
                          "--output", str(tmp_path / "b"), "--set", "stages.2.quantize.epochs=1")
    assert changed.returncode == 0, changed.stderr
    cached = _cached(read_report(tmp_path / "b"))
    assert cached["distill"] and cached["prune"] and not cached["quantize"]


def test_no_cache_trains_everything_and_writes_nothing(tmp_path, example_cache):
    cache = example_cache("digits_from_scratch.yaml")  # holds every step of this recipe
    before = snapshot(cache)
    assert before, "the example run left no cache entries to ignore"

    result = run_edgekit("compress", "recipes/digits_from_scratch.yaml", "--output", str(tmp_path / "run"), "-q",
                         "--cache-dir", str(cache), "--no-cache")

    assert result.returncode == 0, result.stderr
    assert not any(_cached(read_report(tmp_path / "run")).values())
    assert snapshot(cache) == before
