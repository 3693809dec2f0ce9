"""The outcome of a search: its points, its Pareto front and the trial it ships.

The front is Optuna's (`Study.best_trials`: the non-dominated trials among those that meet every
constraint, i.e. every gate, on the validation split). The shipped trial is the front's best by the
`select` objective (default the first objective), ties broken by the other objectives in order,
then by trial number. A search never ends empty: when no trial meets the gates, the complete trial
with the smallest sum of gate violations ships, and the search exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from edgekit.recipe.search import Objective


@dataclass
class Outcome:
    points: list[dict]  # one per finished trial, for report.json's `search.points` and trials.csv
    front: list[int]  # trial numbers on the front
    chosen: Optional[int]  # the shipped trial; None when no trial completed
    feasible: bool  # the chosen trial meets every gate (validation split)


def outcome(study, objectives: list[Objective], select: Objective) -> Outcome:
    from edgekit.search.study import finished

    trials = finished(study)
    complete = [t for t in trials if t.values is not None]
    front = {t.number for t in study.best_trials} if complete else set()
    points = [_point(t, objectives, t.number in front) for t in trials]
    by_number = {p["trial"]: p for p in points}
    feasible = [p for p in points if p["feasible"]]
    if front and feasible:
        candidates, is_feasible = [by_number[n] for n in front], True
    else:
        candidates, is_feasible = [p for p in points if p["state"] == "complete"], False
    ordered = sorted(candidates, key=lambda p: _order(p, objectives, select, is_feasible))
    return Outcome(points, sorted(front & {p["trial"] for p in feasible}), ordered[0]["trial"] if ordered else None,
                   is_feasible)


def _point(trial, objectives: list[Objective], on_front: bool) -> dict:
    attrs = trial.user_attrs
    constraints = attrs.get("constraints") or {}
    complete = trial.values is not None
    values = {o.key: (int(v) if o.name == "size" else v) for o, v in zip(objectives, trial.values)} if complete else None
    feasible = complete and all(v <= 0 for v in constraints.values())
    return {"trial": trial.number, "state": "complete" if complete else "failed", "params": attrs.get("params") or dict(trial.params),
            "values": values, **(attrs.get("figures") or {"bytes": None, "p50_ms": None, "accuracy": None, "mae": None}),
            "constraints": constraints, "feasible": feasible,
            "violation": round(sum(max(0.0, v) for v in constraints.values()), 6) if complete else None,
            "pareto": on_front and feasible, "wall_s": attrs.get("wall_s"), "error": attrs.get("error"),
            "trained": attrs.get("trained") or [], "cached": attrs.get("cached") or [],
            "test_exit_code": attrs.get("test_exit_code")}


def _order(point: dict, objectives: list[Objective], select: Objective, feasible: bool) -> tuple:
    def signed(objective: Objective) -> float:
        value = point["values"][objective.key]
        return value if objective.direction == "minimize" else -value

    ranked = [select] + [o for o in objectives if o != select]
    lead = () if feasible else (point["violation"],)
    return (*lead, *(signed(o) for o in ranked), point["trial"])
