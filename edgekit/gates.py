"""Gates: pure functions of report.json, so `compress` and `edgekit gate` judge alike.

Each gate yields one result per artifact it applies to: {"gate", "artifact", "limit", "value",
"unit", "passed"}. A gate whose figure is missing fails: an unmeasured model never passes.

    >>> evaluate_gates(report, {"max_size": 65536, "min_accuracy": 0.95})
    [{'gate': 'max_size', 'artifact': 'model.tflite', 'limit': 65536, 'value': 14112, ...}, ...]
"""

from __future__ import annotations

from typing import Any, Callable, Optional

EPSILON = 1e-9


def _finals(report: dict) -> list[dict]:
    return [a for a in report.get("artifacts", []) if a.get("role") == "final"]


def _find(report: dict, role: str, fmt: str) -> Optional[dict]:
    return next((a for a in report.get("artifacts", []) if a.get("role") == role and a.get("format") == fmt), None)


def _teacher(report: dict) -> Optional[dict]:
    return next((a for a in report.get("artifacts", []) if a.get("role") == "teacher"), None)


def _result(gate: str, artifact: str, limit: Any, value: Any, passed: bool, unit: str) -> dict:
    return {"gate": gate, "artifact": artifact, "limit": limit, "value": value, "unit": unit,
            "passed": bool(passed and value is not None)}


def _max_size(report, limit):
    return [_result("max_size", a["name"], limit, a.get("bytes"), a.get("bytes") is not None and a["bytes"] <= limit,
                    "bytes") for a in _finals(report)]


def _quality_drop(report: dict, artifact: dict) -> Optional[float]:
    """Accuracy lost against the teacher (classification) or MAE gained (regression)."""
    teacher = _teacher(report)
    metric = report.get("metric", "accuracy")
    if teacher is None or teacher.get(metric) is None or artifact.get(metric) is None:
        return None
    delta = teacher[metric] - artifact[metric]
    return round(delta if metric == "accuracy" else -delta, 6)


def _max_accuracy_drop(report, limit):
    unit = "accuracy" if report.get("metric", "accuracy") == "accuracy" else "mae"
    results = []
    for a in _finals(report):
        drop = _quality_drop(report, a)
        results.append(_result("max_accuracy_drop", a["name"], limit, drop,
                               drop is not None and drop <= limit + EPSILON, unit))
    return results


def _min_accuracy(report, limit):
    return [_result("min_accuracy", a["name"], limit, a.get("accuracy"),
                    a.get("accuracy") is not None and a["accuracy"] >= limit - EPSILON, "accuracy")
            for a in _finals(report)]


def _max_latency_ms(report, limit):
    final = _find(report, "final", "tflite")
    p50 = ((final or {}).get("latency_ms") or {}).get("p50")
    return [_result("max_latency_ms", final["name"] if final else "model.tflite", limit, p50,
                    p50 is not None and p50 <= limit, "ms (p50, LiteRT)")]


def _min_compression(report, limit):
    final, baseline = _find(report, "final", "tflite"), _find(report, "baseline", "tflite")
    ratio = None
    if final and baseline and final.get("bytes") and baseline.get("bytes"):
        ratio = round(baseline["bytes"] / final["bytes"], 4)
    return [_result("min_compression", final["name"] if final else "model.tflite", limit, ratio,
                    ratio is not None and ratio >= limit - EPSILON, "x (baseline.tflite / model.tflite bytes)")]


GATES: dict[str, Callable[[dict, Any], list[dict]]] = {
    "max_size": _max_size,
    "max_accuracy_drop": _max_accuracy_drop,
    "min_accuracy": _min_accuracy,
    "max_latency_ms": _max_latency_ms,
    "min_compression": _min_compression,
}


def evaluate_gates(report: dict, gates: dict) -> list[dict]:
    """Every configured gate (None values are skipped), in the order of GATES."""
    results: list[dict] = []
    for name, check in GATES.items():
        if gates.get(name) is not None:
            results.extend(check(report, gates[name]))
    return results


def verdict(results: list[dict]) -> int:
    """Exit code: 0 when every gate passed (or none was set), 1 otherwise."""
    return 0 if all(r["passed"] for r in results) else 1
