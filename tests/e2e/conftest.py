"""Each example recipe runs once per test session; several tests read the same run.

Under pytest-xdist (`make test`) the test files are spread over worker processes, each with its own
session fixtures, and the files that read an example run (test_recipes, test_expected_metrics,
test_compression, test_bundle, test_torch, test_workers) land on different workers. The runs are
therefore kept in the directory all workers share (the parent of each worker's base temp), one
per recipe, made under a file lock by the first worker that needs it; the others wait for it
and read the same directory. Tests only read these run directories.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
from filelock import FileLock

from tests.helpers import ROOT, CliResult, run_edgekit


@pytest.fixture(scope="session")
def example_run(tmp_path_factory, worker_id):
    """`example_run("digits_full.yaml")` -> (run directory, CliResult), run on first use only."""
    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / "examples"
    shared.mkdir(exist_ok=True)

    def run(recipe: str):
        name = recipe.removesuffix(".yaml")
        out, record = shared / name, shared / f"{name}.result.json"
        with FileLock(str(shared / f"{name}.lock")):
            if not record.exists():
                result = run_edgekit("compress", str(ROOT / "recipes" / recipe), "--output", str(out), "-q")
                record.write_text(json.dumps(dataclasses.asdict(result)))
        return out, CliResult(**json.loads(record.read_text()))

    return run
