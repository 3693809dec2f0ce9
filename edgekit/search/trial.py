"""One trial of a search: the recipe with the trial's values, run by the normal pipeline.

`run_trial` is what a Ray task executes (`edgekit.search.execution`). It reads the user's recipe
again (with the same `--set` overrides), sets the trial's values, and runs it with
`edgekit.run.pipeline.run` into the trial's own run directory, sharing the stage cache with every
other trial. The files are measured on the validation split too, and the result is what the search
needs: the objectives, the gates' constraints (both on the validation split), the trained and
cached steps, and the test split's verdict for the record. A trial whose recipe cannot run (exit
2) or whose stage fails (exit 3) is a failed trial with its error; the search goes on.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from edgekit.errors import EdgekitError
from edgekit.recipe.search import Objective


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs to run a trial: plain data, so that it crosses to Ray workers."""

    number: int
    params: dict[str, Any]
    recipe_path: str
    overrides: tuple[str, ...]
    output: str
    cache_dir: str
    cache_enabled: bool
    cwd: str
    objectives: tuple[Objective, ...]


@dataclass
class TrialResult:
    number: int
    params: dict[str, Any]
    state: str  # "complete" | "failed"
    values: Optional[dict[str, float]] = None  # objective key -> value
    constraints: dict[str, float] = field(default_factory=dict)  # gate -> normalized violation
    figures: dict = field(default_factory=dict)  # primary file's bytes, p50_ms, accuracy / mae (validation)
    trained: list[str] = field(default_factory=list)  # steps this trial trained
    cached: list[str] = field(default_factory=list)  # training steps it took from the stage cache
    test_exit_code: Optional[int] = None  # the run's own verdict (test split), for the record
    error: Optional[str] = None
    exit_code: int = 0
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and all(v <= 0 for v in self.constraints.values())


def run_trial(spec: TrialSpec) -> TrialResult:
    """Run one trial and return its result; never raises for the trial's own failure."""
    start = time.perf_counter()
    os.chdir(spec.cwd)
    try:
        result = _run(spec)
    except EdgekitError as exc:
        result = TrialResult(spec.number, spec.params, "failed", error=str(exc), exit_code=exc.exit_code)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a bug or a framework error: the trial fails, the search goes on
        result = TrialResult(spec.number, spec.params, "failed", error=f"internal error: {type(exc).__name__}: {exc}",
                             exit_code=3)
    result.wall_s = round(time.perf_counter() - start, 3)
    return result


def _run(spec: TrialSpec) -> TrialResult:
    from edgekit.recipe import load_recipe
    from edgekit.run.cache import StageCache
    from edgekit.run.pipeline import run
    from edgekit.search.measures import gate_constraints, objective_value, trial_figures
    from edgekit.search.space import trial_recipe

    recipe = trial_recipe(load_recipe(spec.recipe_path, spec.overrides), spec.params)
    outcome = run(recipe, spec.output, cache=StageCache(spec.cache_dir, enabled=spec.cache_enabled),
                  measure_validation=True)
    report = outcome.report
    values = {o.key: objective_value(report, o) for o in spec.objectives}
    missing = [key for key, value in values.items() if value is None]
    steps = [s for s in report["stages"] if s.get("trained")]
    common = dict(trained=[s["name"] for s in steps if not s.get("cached")],
                  cached=[s["name"] for s in steps if s.get("cached")],
                  figures=trial_figures(report, list(spec.objectives)), test_exit_code=outcome.exit_code)
    if missing:
        return TrialResult(spec.number, spec.params, "failed", exit_code=3, **common,
                           error=f"the objective(s) {', '.join(missing)} were not measured by this trial's run")
    constraints = gate_constraints(report, recipe.gates.model_dump())
    return TrialResult(spec.number, spec.params, "complete", values=values, constraints=constraints, **common)
