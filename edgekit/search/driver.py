"""`edgekit search`: Optuna asks, Ray runs the trials, the gates constrain, the front ships.

    >>> result = run_search(load_recipe("recipes/digits_search.yaml"), "recipes/digits_search.yaml")
    >>> result.exit_code, result.run_dir
    (0, PosixPath('runs/digits-search'))

The search's state (the Optuna journal and each trial's run directory) lives in a hidden sibling of
the output, `runs/.<name>.search/`, until the budget is spent; then the chosen trial and the
search's files replace `runs/<name>/` (edgekit.search.outputs) and the state is removed. An
interrupted search keeps its state, and `--resume` continues it.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgekit.errors import StageError
from edgekit.progress import SILENT, Progress
from edgekit.recipe import Recipe
from edgekit.recipe.support import check_one_process
from edgekit.run.cache import DISABLED, StageCache
from edgekit.run.pipeline import output_dir
from edgekit.run.rundir import check_output_is_safe
from edgekit.search import study as studies
from edgekit.search.execution import ray_pool
from edgekit.search.outputs import search_section, write_search
from edgekit.search.pareto import outcome
from edgekit.search.space import check_space
from edgekit.search.trial import TrialSpec
from edgekit.search.watch import SearchWatch


@dataclass
class SearchResult:
    report: dict
    run_dir: Path
    exit_code: int


@dataclass(frozen=True)
class SearchOptions:
    """The command line's part: budget, parallelism, resumption, and how trials see the recipe."""

    recipe_path: str
    overrides: tuple[str, ...] = ()
    output: Optional[str] = None
    trials: Optional[int] = None
    workers: Optional[int] = None
    ray_address: Optional[str] = None
    resume: bool = False
    debug: bool = False


def state_directory(target: Path) -> Path:
    return target.parent / f".{target.name}.search"


def run_search(recipe: Recipe, options: SearchOptions, progress: Progress = SILENT,
               cache: StageCache = DISABLED) -> SearchResult:
    """Search, write the chosen trial into the output directory, and return its report and exit code
    (0: it meets every gate; 1: no trial met them all, the closest ships)."""
    search = recipe.search
    formats = recipe.export.formats
    objectives, select = search.objective_list(formats), search.selected(formats)
    budget = options.trials or search.trials
    check_one_process(recipe, "search")
    check_space(recipe)
    target = output_dir(recipe, options.output)
    check_output_is_safe(target, [p for p in [recipe.source] if p])
    state = state_directory(target.absolute())
    study = studies.open_study(state, recipe, objectives, options.resume)
    start = time.perf_counter()
    before = len(studies.finished(study))
    with ray_pool(options.workers, options.ray_address, options.debug) as pool, \
            SearchWatch(progress, budget, before, objectives, select) as watch:
        while len(studies.finished(study)) < budget:
            batch = min(search.population, budget - len(studies.finished(study)))
            asked = dict(studies.ask(study, search.space) for _ in range(batch))
            trials = {trial.number: trial for trial in asked}
            specs = [_spec(trial.number, params, state, options, cache, objectives) for trial, params in asked.items()]
            watch.started(len(specs))
            for result in pool.run(specs):
                studies.tell(study, trials[result.number], result)
                watch.finished(result)
    found = outcome(study, objectives, select)
    if found.chosen is None:
        errors = sorted({p["error"] for p in found.points if p.get("error")})
        shutil.rmtree(state, ignore_errors=True)
        raise StageError("search", f"all {len(found.points)} trials failed, so there is nothing to ship: "
                         + " | ".join(e.splitlines()[0][:300] for e in errors[:3]))
    chosen = next(p for p in found.points if p["trial"] == found.chosen)
    exit_code = chosen["test_exit_code"] if found.feasible else 1
    summary = {"trials": budget, "workers": pool.slots, "sampler": search.sampler, "population": search.population,
               "seed": recipe.seed if search.seed is None else search.seed, "ray_address": options.ray_address,
               "resumed_trials": before, "wall_s": round(time.perf_counter() - start, 3)}
    report = write_search(target, state, search_section(found, objectives, select, summary), exit_code)
    shutil.rmtree(state, ignore_errors=True)
    return SearchResult(report, target, exit_code)


def _spec(number: int, params: dict, state: Path, options: SearchOptions, cache: StageCache,
          objectives: list) -> TrialSpec:
    return TrialSpec(number=number, params=params, recipe_path=str(Path(options.recipe_path).absolute()),
                     overrides=tuple(options.overrides), output=str(state / "trials" / str(number)),
                     cache_dir=str(cache.root.absolute()), cache_enabled=cache.enabled, cwd=os.getcwd(),
                     objectives=tuple(objectives))
