"""The search's bookkeeping without running a model: gate constraints on the validation split,
Optuna's front, the shipped trial, the budget and resumption of a journal, and the stage cache
shared by concurrent processes."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from edgekit.recipe.search import Objective
from edgekit.search import study as studies
from edgekit.search.measures import MISSING, gate_constraints, objective_value, validation_view
from edgekit.search.pareto import outcome
from edgekit.search.trial import TrialResult

SIZE, ACCURACY = Objective("size", "tflite"), Objective("accuracy", "tflite")


def report(size: int, test: float, validation: float, teacher_validation: float = 0.98) -> dict:
    return {"metric": "accuracy", "artifacts": [
        {"name": "teacher", "role": "teacher", "accuracy": 0.99, "validation": {"accuracy": teacher_validation}},
        {"name": "model.tflite", "role": "final", "format": "tflite", "bytes": size, "accuracy": test,
         "latency_ms": {"p50": 0.01}, "validation": {"accuracy": validation}}]}


def test_objectives_and_gates_read_the_validation_split_not_the_test_split():
    found = report(9_000, test=0.99, validation=0.95)

    assert objective_value(found, ACCURACY) == 0.95 and objective_value(found, SIZE) == 9_000
    assert validation_view(found)["artifacts"][1]["accuracy"] == 0.95
    constraints = gate_constraints(found, {"max_size": 10_000, "min_accuracy": 0.96, "max_accuracy_drop": 0.01})
    assert constraints["max_size"] == pytest.approx(-0.1)  # 10% under the limit: met
    assert constraints["min_accuracy"] == pytest.approx((0.96 - 0.95) / 0.96)  # missed on validation
    assert constraints["max_accuracy_drop"] == pytest.approx(2.0)  # 0.03 drop against a 0.01 limit


def test_a_figure_that_was_not_measured_violates_its_gate():
    found = report(9_000, test=0.99, validation=0.95)
    del found["artifacts"][1]["validation"]

    assert gate_constraints(found, {"min_accuracy": 0.5})["min_accuracy"] == MISSING
    assert objective_value(found, ACCURACY) is None


def new_study(tmp_path: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize", "maximize"], storage=None)
    study.set_user_attr("objectives", [SIZE.key, ACCURACY.key])
    return study


def tell(study, number: int, size: int, accuracy: float, constraints: dict, state="complete", error=None):
    trial = study.ask()
    trial.suggest_int("width", 0, 100)
    result = TrialResult(trial.number, {"width": number}, state, exit_code=3 if error else 0, error=error,
                         values={SIZE.key: size, ACCURACY.key: accuracy} if state == "complete" else None,
                         constraints=constraints, figures={"bytes": size, "p50_ms": None, "accuracy": accuracy,
                                                           "mae": None})
    studies.tell(study, trial, result)


def test_the_smallest_feasible_front_point_ships(tmp_path):
    study = new_study(tmp_path)
    tell(study, 0, 20_000, 0.99, {"max_size": 1.0})  # too large: infeasible
    tell(study, 1, 9_000, 0.97, {"max_size": -0.1})
    tell(study, 2, 7_000, 0.965, {"max_size": -0.3})
    tell(study, 3, 8_000, 0.96, {"max_size": -0.2})  # dominated by trial 2
    tell(study, 4, 0, 0.0, {}, state="failed", error="stage 'prune' failed: boom")

    found = outcome(study, [SIZE, ACCURACY], SIZE)

    assert found.feasible and found.chosen == 2
    assert found.front == [1, 2]
    points = {p["trial"]: p for p in found.points}
    assert points[4]["state"] == "failed" and "boom" in points[4]["error"] and not points[4]["pareto"]
    assert points[0]["violation"] == 1.0 and not points[0]["feasible"]
    assert outcome(study, [SIZE, ACCURACY], ACCURACY).chosen == 1  # select: accuracy


def test_with_no_feasible_trial_the_closest_ships_and_the_outcome_says_so(tmp_path):
    study = new_study(tmp_path)
    tell(study, 0, 20_000, 0.99, {"max_size": 1.0, "min_accuracy": -0.02})
    tell(study, 1, 12_000, 0.95, {"max_size": 0.2, "min_accuracy": 0.01})
    tell(study, 2, 11_000, 0.90, {"max_size": 0.1, "min_accuracy": 0.5})

    found = outcome(study, [SIZE, ACCURACY], SIZE)

    assert not found.feasible and found.chosen == 1 and found.front == []


def test_failed_trials_count_against_the_budget_and_interrupted_ones_are_run_again(tmp_path):
    recipe_path = Path(__file__).resolve().parents[2] / "recipes" / "digits_search.yaml"
    from edgekit.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    objectives = recipe.search.objective_list(recipe.export.formats)
    state = tmp_path / ".run.search"
    study = studies.open_study(state, recipe, objectives, resume=False)
    trial, params = studies.ask(study, recipe.search.space)
    studies.tell(study, trial, TrialResult(trial.number, params, "failed", error="bad", exit_code=2))
    cut_short, cut_params = studies.ask(study, recipe.search.space)  # left RUNNING, as by a killed search

    resumed = studies.open_study(state, recipe, objectives, resume=True)

    assert len(studies.finished(resumed)) == 1
    again, again_params = studies.ask(resumed, recipe.search.space)
    assert again_params == cut_params and again.number != cut_short.number
    with pytest.raises(Exception, match="--resume"):
        studies.open_study(state, recipe, objectives, resume=False)
    changed = load_recipe(recipe_path, ["gates.min_accuracy=0.5"])
    with pytest.raises(Exception, match="another version of the recipe"):
        studies.open_study(state, changed, objectives, resume=True)
    longer = load_recipe(recipe_path, ["search.trials=40"])
    assert studies.open_study(state, longer, objectives, resume=True) is not None  # only the budget changed


def _train_once(root: str, key: str, log: str) -> None:
    from edgekit.run.cache import StageCache

    cache = StageCache(Path(root))
    with cache.claim(key):
        if cache.entry(key) is None:
            with open(log, "a") as handle:
                handle.write("trained\n")
            time.sleep(0.5)  # long enough for the other process to be waiting on the claim
            cache.store(key, {"by": multiprocessing.current_process().name})


def test_concurrent_runs_train_a_shared_step_once(tmp_path):
    log = tmp_path / "log"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_train_once, args=(str(tmp_path / "cache"), "k1", str(log))) for _ in range(3)]

    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    assert all(w.exitcode == 0 for w in workers)
    assert log.read_text().count("trained") == 1
    assert (tmp_path / "cache" / "k1" / "meta.json").exists()


def test_a_second_writer_of_an_entry_keeps_the_first(tmp_path):
    from edgekit.run.cache import StageCache

    cache = StageCache(tmp_path)

    def another_process_stores_it_meanwhile(directory: Path) -> None:
        StageCache(tmp_path).store("k", {"n": 1})

    assert cache.store("k", {"n": 2}, another_process_stores_it_meanwhile) is None  # no warning
    assert cache.meta("k") == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # the second writer's staging is gone
