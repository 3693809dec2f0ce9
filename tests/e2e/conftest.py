"""Each example recipe runs once per test session; several tests read the same run.

Under pytest-xdist (`make test`) the test files are spread over worker processes, each with its own
session fixtures, and the files that read an example run (test_recipes, test_expected_metrics,
test_compression, test_bundle, test_torch, test_workers) land on different workers. The runs are
therefore kept in the directory all workers share (the parent of each worker's base temp), one
per recipe, made under a file lock by the first worker that needs it; the others wait for it
and read the same directory. Tests only read these run directories.

Each example run fills a stage cache of its own (`example_cache`), which tests/e2e/test_cache.py
re-runs against instead of training the recipe a second time.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from filelock import FileLock

from tests.helpers import ROOT, CliResult, run_edgekit


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory, worker_id) -> Path:
    """The directory every xdist worker shares for the example runs."""
    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "examples"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def example_run(examples_dir):
    """`example_run("digits_full.yaml")` -> (run directory, CliResult), run on first use only, with
    an empty stage cache of its own (`example_cache`)."""

    def run(recipe: str):
        name = recipe.removesuffix(".yaml")
        out, record = examples_dir / name, examples_dir / f"{name}.result.json"
        with FileLock(str(examples_dir / f"{name}.lock")):
            if not record.exists():
                result = run_edgekit("compress", str(ROOT / "recipes" / recipe), "--output", str(out), "-q",
                                     "--cache-dir", str(examples_dir / f"{name}.cache"))
                record.write_text(json.dumps(dataclasses.asdict(result)))
        return out, CliResult(**json.loads(record.read_text()))

    return run


@pytest.fixture(scope="session")
def example_cache(example_run, examples_dir):
    """`example_cache("digits_full.yaml")` -> the stage cache its example run filled (made if needed).
    Only tests/e2e/test_cache.py uses these caches, so no other file's run writes to them."""

    def cache(recipe: str) -> Path:
        example_run(recipe)
        return examples_dir / f"{recipe.removesuffix('.yaml')}.cache"

    return cache
