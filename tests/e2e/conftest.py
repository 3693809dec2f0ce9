"""Each example recipe runs once per test session; several tests read the same run."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT, run_edgekit


@pytest.fixture(scope="session")
def example_run(tmp_path_factory):
    """`example_run("digits_full.yaml")` -> (run directory, CliResult), run on first use only."""
    runs: dict = {}

    def run(recipe: str):
        if recipe not in runs:
            out = tmp_path_factory.mktemp("examples") / recipe.removesuffix(".yaml")
            runs[recipe] = (out, run_edgekit("compress", str(ROOT / "recipes" / recipe), "--output", str(out), "-q"))
        return runs[recipe]

    return run
