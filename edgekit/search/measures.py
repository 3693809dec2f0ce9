"""What a trial's report says to the search: its objectives and how far it is from each gate.

Trials are compared on the validation split (the test split never chooses): a trial's run measures
each file on it too (`validation` in each artifact entry), and `validation_view` is the report with
those figures in place of the test split's. Sizes and latencies do not depend on the split.

A gate's constraint is its largest normalized violation over the files it judges: for a `max_`
gate (value - limit) / |limit|, for a `min_` gate (limit - value) / |limit|; at most 0 means met
(Optuna's convention). A figure that was not measured is a violation of MISSING.
"""

from __future__ import annotations

from typing import Optional

from edgekit.gates import evaluate_gates
from edgekit.recipe.search import Objective

MISSING = 1000.0


def validation_view(report: dict) -> dict:
    """`report` with each artifact's quality figures taken from the validation split."""
    metric = report.get("metric", "accuracy")
    artifacts = []
    for artifact in report.get("artifacts", []):
        validation = artifact.get("validation") or {}
        artifacts.append({**artifact, metric: validation.get(metric), "agreement": None})
    return {**report, "artifacts": artifacts}


def _final(report: dict, fmt: str) -> Optional[dict]:
    return next((a for a in report.get("artifacts", []) if a.get("role") == "final" and a.get("format") == fmt), None)


def objective_value(report: dict, objective: Objective) -> Optional[float]:
    """The objective's figure of the final file of its format, on the validation split; None if unmeasured."""
    artifact = _final(validation_view(report), objective.fmt) or {}
    if objective.name == "size":
        value = artifact.get("bytes")
    elif objective.name == "latency":
        value = (artifact.get("latency_ms") or {}).get("p50")
    else:
        value = artifact.get(objective.name)
    return value if value is None or isinstance(value, int) else float(value)  # bytes stay whole


def gate_constraints(report: dict, gates: dict) -> dict[str, float]:
    """{gate name: largest normalized violation} of every configured gate, on the validation view."""
    constraints: dict[str, float] = {}
    for result in evaluate_gates(validation_view(report), gates):
        constraints[result["gate"]] = max(constraints.get(result["gate"], -MISSING), _violation(result))
    return constraints


def _violation(result: dict) -> float:
    value, limit = result["value"], result["limit"]
    if value is None:
        return MISSING
    scale = abs(limit) if limit else 1.0
    excess = (value - limit) if result["gate"].startswith("max_") else (limit - value)
    return round(excess / scale, 9)


def trial_figures(report: dict, objectives: list[Objective]) -> dict:
    """The primary file's bytes, p50 and quality (validation), for the search's table and plots."""
    primary = objectives[0].fmt
    artifact = _final(validation_view(report), primary) or {}
    return {"bytes": artifact.get("bytes"), "p50_ms": (artifact.get("latency_ms") or {}).get("p50"),
            "accuracy": artifact.get("accuracy"), "mae": artifact.get("mae")}
