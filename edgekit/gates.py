"""Gates: pure functions of report.json, so `compress` and `edgekit gate` judge alike.

Each gate yields one result per artifact it applies to: {"gate", "artifact", "limit", "value",
"unit", "passed"}. A gate whose figure is missing fails: an unmeasured model never passes. A file
measured on several runtimes (a .tflite on LiteRT and TFLite Micro) has one entry per runtime: the
gates on what a runtime measures (accuracy) judge each entry, named "model.tflite on tflm"; those on
the file itself (its bytes) judge the file once.

    >>> evaluate_gates(report, {"max_size": 65536, "min_accuracy": 0.95})
    [{'gate': 'max_size', 'artifact': 'model.tflite', 'limit': 65536, 'value': 14112, ...}, ...]

`regression_gates(report, baseline, ...)` compares a report with an older one (size growth, accuracy
drop per artifact) for `edgekit gate --baseline`; it returns results of the same shape.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

EPSILON = 1e-9
#: the runtime that measures a microcontroller's tensor arena and flash (`edgekit.runtimes.tflm`)
MICRO_RUNTIME = "tflm"


def _finals(report: dict) -> list[dict]:
    return [a for a in report.get("artifacts", []) if a.get("role") == "final"]


def _one_per_file(entries: list, name=lambda a: a.get("name")) -> list:
    """`entries` without the later ones of a file already listed (another runtime's entry of it)."""
    first: dict = {}
    for entry in entries:
        first.setdefault(name(entry), entry)
    return list(first.values())


def label(report: dict, artifact: dict) -> str:
    """The artifact's name, with its runtime when the report measured that file on several."""
    name = artifact.get("name", "?")
    runtimes = {a.get("runtime") for a in report.get("artifacts", []) if a.get("name") == name}
    return f"{name} on {artifact.get('runtime')}" if len(runtimes) > 1 else name


def _find(report: dict, role: str, fmt: str, runtime: Optional[str] = None) -> Optional[dict]:
    return next((a for a in report.get("artifacts", []) if a.get("role") == role and a.get("format") == fmt
                 and (runtime is None or a.get("runtime") in (runtime, None))), None)


def _teacher(report: dict) -> Optional[dict]:
    return next((a for a in report.get("artifacts", []) if a.get("role") == "teacher"), None)


def _result(gate: str, artifact: str, limit: Any, value: Any, passed: bool, unit: str) -> dict:
    return {"gate": gate, "artifact": artifact, "limit": limit, "value": value, "unit": unit,
            "passed": bool(passed and value is not None)}


def _max_size(report, limit):
    return [_result("max_size", a["name"], limit, a.get("bytes"), a.get("bytes") is not None and a["bytes"] <= limit,
                    "bytes") for a in _one_per_file(_finals(report))]


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
        results.append(_result("max_accuracy_drop", label(report, a), limit, drop,
                               drop is not None and drop <= limit + EPSILON, unit))
    return results


def _min_accuracy(report, limit):
    return [_result("min_accuracy", label(report, a), limit, a.get("accuracy"),
                    a.get("accuracy") is not None and a["accuracy"] >= limit - EPSILON, "accuracy")
            for a in _finals(report)]


def _max_latency_ms(report, limit):
    final = _find(report, "final", "tflite", runtime="litert")
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


def _on_micro(report: dict, gate: str, key: str, limit, unit: str) -> list[dict]:
    """`key` of each final file measured on TFLite Micro (its runtime measures the arena and flash
    an MCU build needs) against `limit`; one failing result when no file was run there."""
    entries = [a for a in _finals(report) if a.get("runtime") == MICRO_RUNTIME]
    if not entries:
        return [_result(gate, f"model.tflite on {MICRO_RUNTIME}", limit, None, False, unit)]
    return [_result(gate, label(report, a), limit, a.get(key), a.get(key) is not None and a[key] <= limit, unit)
            for a in entries]


def _max_arena(report, limit):
    return _on_micro(report, "max_arena", "arena_bytes", limit, "bytes (smallest TFLM tensor arena)")


def _max_flash(report, limit):
    return _on_micro(report, "max_flash", "flash_bytes", limit, "bytes (model flashed with TFLM)")


GATES: dict[str, Callable[[dict, Any], list[dict]]] = {
    "max_size": _max_size,
    "max_accuracy_drop": _max_accuracy_drop,
    "min_accuracy": _min_accuracy,
    "max_latency_ms": _max_latency_ms,
    "min_compression": _min_compression,
    "max_arena": _max_arena,
    "max_flash": _max_flash,
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


# ---- regression against a previous report (`edgekit gate --baseline OLD_REPORT.json`) --------------

def _quality_loss(metric: str, old: dict, new: dict) -> Optional[float]:
    """Accuracy lost (or MAE gained) from `old` to `new`; None when either figure is missing."""
    if old.get(metric) is None or new.get(metric) is None:
        return None
    delta = old[metric] - new[metric]
    return round(delta if metric == "accuracy" else -delta, 6)


def _growth(old: dict, new: dict) -> Optional[float]:
    """new bytes / old bytes - 1 (0.1 = 10% larger); None when a size is missing or zero."""
    if not old.get("bytes") or new.get("bytes") is None:
        return None
    return round(new["bytes"] / old["bytes"] - 1, 6)


def _pairs(report: dict, baseline: dict, match: str) -> list[tuple[dict, Optional[dict]]]:
    """(final artifact, the baseline's final artifact with the same `match` key, and runtime where both
    have one) for every final artifact that has one; when none has, every final artifact paired with None, so the gates fail visibly."""
    pairs = [(a, _partner(a, _finals(baseline), match)) for a in _finals(report)]
    pairs = [(a, old) for a, old in pairs if old is not None]
    return pairs or [(a, None) for a in _finals(report)]


def _partner(artifact: dict, olds: list[dict], match: str) -> Optional[dict]:
    """The entry of `olds` with the artifact's `match` key, measured on its runtime when there is one."""
    same = [old for old in olds if old.get(match) == artifact.get(match)]
    return next((old for old in same if old.get("runtime") == artifact.get("runtime")), same[0] if same else None)


def regression_gates(report: dict, baseline: dict, max_growth: Optional[float] = None,
                     max_accuracy_drop: Optional[float] = None, match: str = "name") -> list[dict]:
    """Compare `report`'s final artifacts with `baseline`'s (an older report.json of the same model).

    Artifacts are paired by `match`: "name" (model.tflite with model.tflite) for two reports, "format"
    for a single model file against a report. An artifact new in `report` is not compared; when no
    artifact pairs up at all, each gate fails with value None (a baseline that compares nothing must
    not pass). Gates (None = not set):

    - `max_growth`: new bytes / old bytes - 1 must be <= max_growth (0.05 = 5% larger at most);
    - `max_accuracy_drop`: baseline accuracy - new accuracy (MAE: new - old) must be <= the limit.
      The metric is `report["metric"]`; the baseline must use the same one.

    >>> regression_gates(new, old, max_growth=0.05)   # doctest: +SKIP
    [{'gate': 'max_growth', 'artifact': 'model.tflite', 'limit': 0.05, 'value': 0.1, 'unit': ..., 'passed': False}]
    """
    metric = report.get("metric", "accuracy")
    same_metric = baseline.get("metric", "accuracy") == metric
    results: list[dict] = []
    pairs = _pairs(report, baseline, match)
    if max_growth is not None:
        for new, old in _one_per_file(pairs, name=lambda pair: pair[0].get("name")):
            growth = _growth(old, new) if old else None
            results.append(_result("max_growth", new.get("name", "?"), max_growth, growth,
                                   growth is not None and growth <= max_growth + EPSILON,
                                   "fraction (bytes / baseline bytes - 1)"))
    if max_accuracy_drop is not None:
        unit = ("accuracy" if metric == "accuracy" else "mae") + " vs baseline"
        for new, old in pairs:
            drop = _quality_loss(metric, old, new) if old and same_metric else None
            results.append(_result("max_accuracy_drop_vs_baseline", label(report, new), max_accuracy_drop, drop,
                                   drop is not None and drop <= max_accuracy_drop + EPSILON, unit))
    return results


def artifact_latency_gate(artifact: dict, limit: float) -> dict:
    """max_latency_ms on one artifact's own p50, whatever its runtime (used for a bare model file)."""
    p50 = (artifact.get("latency_ms") or {}).get("p50")
    runtime = artifact.get("runtime") or "?"
    return _result("max_latency_ms", artifact.get("name", "?"), limit, p50,
                   p50 is not None and p50 <= limit, f"ms (p50, {runtime})")
