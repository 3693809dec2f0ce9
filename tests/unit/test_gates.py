"""edgekit.gates: pure functions of a report dict (built by hand here, as report.json would hold it)."""

from __future__ import annotations

import copy

import pytest

from edgekit.gates import GATES, evaluate_gates, verdict
from edgekit.recipe import GatesConfig


def artifact(name, role, fmt, size=None, accuracy=None, mae=None, p50=None):
    entry = {"name": name, "role": role, "format": fmt, "bytes": size}
    if accuracy is not None:
        entry["accuracy"] = accuracy
    if mae is not None:
        entry["mae"] = mae
    if p50 is not None:
        entry["latency_ms"] = {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5}
    return entry


def make_report(metric="accuracy"):
    """Teacher 0.97; float baseline 200 kB; final int8 50 kB (.tflite) and 60 kB (.onnx)."""
    quality = (lambda v: {"accuracy": v}) if metric == "accuracy" else (lambda v: {"mae": v})
    teacher_q = 0.97 if metric == "accuracy" else 0.50
    return {
        "metric": metric,
        "artifacts": [
            artifact("teacher", "teacher", "keras", size=None, **quality(teacher_q)),
            artifact("baseline.tflite", "baseline", "tflite", size=200_000, p50=3.0, **quality(teacher_q)),
            artifact("baseline.onnx", "baseline", "onnx", size=210_000, p50=2.5, **quality(teacher_q)),
            artifact("model.tflite", "final", "tflite", size=50_000, p50=1.5,
                     **quality(0.965 if metric == "accuracy" else 0.55)),
            artifact("model.onnx", "final", "onnx", size=60_000, p50=9.0,
                     **quality(0.96 if metric == "accuracy" else 0.58)),
        ],
    }


def by_artifact(results):
    return {r["artifact"]: r for r in results}


def set_field(report, name, **fields):
    for a in report["artifacts"]:
        if a["name"] == name:
            a.update(fields)
    return report


# ---- max_size --------------------------------------------------------------------------------


def test_max_size_yields_one_result_per_final_artifact():
    results = evaluate_gates(make_report(), {"max_size": 100_000})

    assert [(r["gate"], r["artifact"]) for r in results] == [("max_size", "model.tflite"), ("max_size", "model.onnx")]
    assert all(r["passed"] for r in results)  # the 200 kB baseline is not gated
    assert by_artifact(results)["model.tflite"]["value"] == 50_000
    assert by_artifact(results)["model.onnx"]["value"] == 60_000
    assert results[0]["unit"] == "bytes" and results[0]["limit"] == 100_000


@pytest.mark.parametrize("name", ["model.tflite", "model.onnx"])
@pytest.mark.parametrize(("size", "passed"), [(63_999, True), (64_000, True), (64_001, False)])
def test_max_size_passes_at_or_below_the_limit_and_fails_above(name, size, passed):
    report = set_field(make_report(), name, bytes=size)

    results = by_artifact(evaluate_gates(report, {"max_size": 64_000}))

    assert results[name]["passed"] is passed
    assert results[name]["value"] == size
    other = "model.onnx" if name == "model.tflite" else "model.tflite"
    assert results[other]["passed"] is True


def test_max_size_accepts_the_recipe_gate_config():
    gates = GatesConfig(max_size="64KB").model_dump()

    results = by_artifact(evaluate_gates(set_field(make_report(), "model.onnx", bytes=64_001), gates))

    assert results["model.tflite"]["passed"] is True
    assert results["model.onnx"]["passed"] is False


# ---- max_accuracy_drop -----------------------------------------------------------------------


def test_accuracy_drop_is_teacher_minus_artifact():
    results = by_artifact(evaluate_gates(make_report(), {"max_accuracy_drop": 0.008}))

    assert results["model.tflite"]["value"] == pytest.approx(0.005)
    assert results["model.tflite"]["passed"] is True
    assert results["model.onnx"]["value"] == pytest.approx(0.01)
    assert results["model.onnx"]["passed"] is False
    assert results["model.tflite"]["unit"] == "accuracy"


def test_accuracy_drop_exactly_at_the_limit_passes():
    # 0.97 - 0.96 is 0.010000000000000009 in floating point: still within a 0.01 budget
    results = by_artifact(evaluate_gates(make_report(), {"max_accuracy_drop": 0.01}))

    assert results["model.onnx"]["passed"] is True


def test_accuracy_gain_passes_a_zero_drop_budget():
    report = set_field(make_report(), "model.tflite", accuracy=0.99)

    results = by_artifact(evaluate_gates(report, {"max_accuracy_drop": 0.0}))

    assert results["model.tflite"]["value"] == pytest.approx(-0.02)
    assert results["model.tflite"]["passed"] is True
    assert results["model.onnx"]["passed"] is False


def test_regression_drop_is_the_increase_of_mae():
    # teacher MAE 0.50; model.tflite 0.55 (+0.05), model.onnx 0.58 (+0.08)
    results = by_artifact(evaluate_gates(make_report("mae"), {"max_accuracy_drop": 0.06}))

    assert results["model.tflite"]["value"] == pytest.approx(0.05)
    assert results["model.tflite"]["passed"] is True
    assert results["model.onnx"]["value"] == pytest.approx(0.08)
    assert results["model.onnx"]["passed"] is False
    assert results["model.tflite"]["unit"] == "mae"


def test_regression_mae_decrease_is_not_a_drop():
    report = set_field(make_report("mae"), "model.tflite", mae=0.40)

    results = by_artifact(evaluate_gates(report, {"max_accuracy_drop": 0.0}))

    assert results["model.tflite"]["value"] == pytest.approx(-0.10)
    assert results["model.tflite"]["passed"] is True


# ---- min_accuracy ----------------------------------------------------------------------------


def test_min_accuracy_per_final_artifact():
    results = by_artifact(evaluate_gates(make_report(), {"min_accuracy": 0.962}))

    assert results["model.tflite"]["passed"] is True
    assert results["model.tflite"]["value"] == 0.965
    assert results["model.onnx"]["passed"] is False
    assert set(results) == {"model.tflite", "model.onnx"}


def test_min_accuracy_at_the_limit_passes():
    results = by_artifact(evaluate_gates(make_report(), {"min_accuracy": 0.96}))

    assert results["model.onnx"]["passed"] is True


# ---- max_latency_ms --------------------------------------------------------------------------


def test_latency_gate_uses_the_litert_p50_of_the_final_tflite_only():
    # model.onnx has p50 9 ms, far above the limit: it is not gated
    results = evaluate_gates(make_report(), {"max_latency_ms": 2.0})

    assert len(results) == 1
    assert results[0]["artifact"] == "model.tflite"
    assert results[0]["value"] == 1.5
    assert results[0]["passed"] is True


@pytest.mark.parametrize(("limit", "passed"), [(1.5, True), (1.49, False)])
def test_latency_gate_fails_above_the_limit(limit, passed):
    results = evaluate_gates(make_report(), {"max_latency_ms": limit})

    assert results[0]["passed"] is passed


# ---- min_compression -------------------------------------------------------------------------


def test_compression_is_baseline_tflite_over_model_tflite_bytes():
    results = evaluate_gates(make_report(), {"min_compression": 4.0})

    assert len(results) == 1
    assert results[0]["artifact"] == "model.tflite"
    assert results[0]["value"] == pytest.approx(4.0)  # 200_000 / 50_000; the .onnx sizes play no part
    assert results[0]["passed"] is True


def test_compression_below_the_limit_fails():
    results = evaluate_gates(make_report(), {"min_compression": 4.01})

    assert results[0]["passed"] is False


# ---- missing figures fail --------------------------------------------------------------------


def drop_field(report, name, key):
    for a in report["artifacts"]:
        if a["name"] == name:
            a.pop(key, None)
    return report


@pytest.mark.parametrize(
    ("gates", "mutate", "failing"),
    [
        ({"max_size": 10**9}, lambda r: set_field(r, "model.onnx", bytes=None), "model.onnx"),
        ({"max_size": 10**9}, lambda r: drop_field(r, "model.tflite", "bytes"), "model.tflite"),
        ({"max_accuracy_drop": 1.0}, lambda r: drop_field(r, "model.tflite", "accuracy"), "model.tflite"),
        ({"max_accuracy_drop": 1.0},
         lambda r: {**r, "artifacts": [a for a in r["artifacts"] if a["role"] != "teacher"]}, "model.tflite"),
        ({"max_accuracy_drop": 1.0}, lambda r: drop_field(r, "teacher", "accuracy"), "model.onnx"),
        ({"min_accuracy": 0.0}, lambda r: drop_field(r, "model.onnx", "accuracy"), "model.onnx"),
        ({"max_latency_ms": 1000.0}, lambda r: drop_field(r, "model.tflite", "latency_ms"), "model.tflite"),
        ({"max_latency_ms": 1000.0},
         lambda r: {**r, "artifacts": [a for a in r["artifacts"] if a["name"] != "model.tflite"]}, "model.tflite"),
        ({"min_compression": 0.001},
         lambda r: {**r, "artifacts": [a for a in r["artifacts"] if a["name"] != "baseline.tflite"]}, "model.tflite"),
        ({"min_compression": 0.001}, lambda r: set_field(r, "model.tflite", bytes=None), "model.tflite"),
    ],
)
def test_a_missing_figure_fails_its_gate(gates, mutate, failing):
    report = mutate(make_report())

    results = by_artifact(evaluate_gates(report, gates))

    assert results[failing]["passed"] is False
    assert results[failing]["value"] is None
    assert verdict(list(results.values())) == 1


def test_the_same_report_passes_with_every_figure_present():
    # the control for the test above: the generous limits pass when nothing is missing
    gates = {"max_size": 10**9, "max_accuracy_drop": 1.0, "min_accuracy": 0.0, "max_latency_ms": 1000.0,
             "min_compression": 0.001}

    results = evaluate_gates(make_report(), gates)

    assert len(results) == 2 + 2 + 2 + 1 + 1
    assert all(r["passed"] for r in results)
    assert verdict(results) == 0


# ---- unset gates, order, verdict -------------------------------------------------------------


def test_unset_gates_produce_no_results():
    report = make_report()

    assert evaluate_gates(report, {}) == []
    assert evaluate_gates(report, GatesConfig().model_dump()) == []
    assert evaluate_gates(report, {"max_size": None, "min_accuracy": 0.5}) == evaluate_gates(report, {"min_accuracy": 0.5})


def test_results_follow_the_gate_order():
    gates = {"min_compression": 1.0, "max_size": 10**9, "max_latency_ms": 10.0}

    results = evaluate_gates(make_report(), gates)

    assert [r["gate"] for r in results] == ["max_size", "max_size", "max_latency_ms", "min_compression"]
    assert list(GATES) == ["max_size", "max_accuracy_drop", "min_accuracy", "max_latency_ms", "min_compression",
                          "max_arena", "max_flash"]


def test_evaluate_gates_does_not_modify_the_report():
    report = make_report()
    before = copy.deepcopy(report)

    evaluate_gates(report, {"max_size": 1, "max_accuracy_drop": 0.0, "min_compression": 2.0})

    assert report == before


def test_result_records_every_field():
    result = evaluate_gates(make_report(), {"max_size": 55_000})[0]

    assert result == {"gate": "max_size", "artifact": "model.tflite", "limit": 55_000, "value": 50_000,
                      "unit": "bytes", "passed": True}


@pytest.mark.parametrize(
    ("passed", "code"),
    [([], 0), ([True], 0), ([True, True], 0), ([False], 1), ([True, False, True], 1)],
)
def test_verdict_is_the_exit_code(passed, code):
    results = [{"gate": "max_size", "artifact": "a", "passed": p} for p in passed]

    assert verdict(results) == code


def two_runtime_report() -> dict:
    """model.tflite measured on TFLite Micro first, then LiteRT (evaluate.runtimes: [tflm, litert])."""
    report = make_report()
    litert = next(a for a in report["artifacts"] if a["name"] == "model.tflite")
    litert["runtime"] = "litert"
    tflm = {**copy.deepcopy(litert), "runtime": "tflm", "accuracy": 0.90, "latency_ms": {"p50": 40.0}}
    report["artifacts"].insert(report["artifacts"].index(litert), tflm)
    return report


def test_a_file_on_two_runtimes_is_judged_per_runtime_on_accuracy_and_once_on_bytes():
    report = two_runtime_report()

    sizes = evaluate_gates(report, {"max_size": 55_000})
    accuracy = evaluate_gates(report, {"min_accuracy": 0.95})
    latency = evaluate_gates(report, {"max_latency_ms": 2.0})

    assert [(r["artifact"], r["passed"]) for r in sizes] == [("model.tflite", True), ("model.onnx", False)]
    assert [(r["artifact"], r["value"], r["passed"]) for r in accuracy] == [
        ("model.tflite on tflm", 0.90, False), ("model.tflite on litert", 0.965, True), ("model.onnx", 0.96, True)]
    (gate,) = latency
    assert (gate["value"], gate["passed"]) == (1.5, True)  # LiteRT's p50, not TFLite Micro's host figure


def test_a_baseline_pairs_each_runtime_with_its_own_entry():
    from edgekit.gates import regression_gates

    old, new = two_runtime_report(), two_runtime_report()
    next(a for a in new["artifacts"] if a.get("runtime") == "tflm")["accuracy"] = 0.85

    results = regression_gates(new, old, max_growth=0.0, max_accuracy_drop=0.01)

    growth = [(r["artifact"], r["value"]) for r in results if r["gate"] == "max_growth"]
    drops = {r["artifact"]: r["value"] for r in results if r["gate"] == "max_accuracy_drop_vs_baseline"}
    assert growth == [("model.tflite", 0.0), ("model.onnx", 0.0)]
    assert drops == {"model.tflite on tflm": pytest.approx(0.05), "model.tflite on litert": 0.0, "model.onnx": 0.0}


def test_arena_and_flash_gates_judge_the_files_run_on_tflite_micro():
    report = two_runtime_report()
    tflm = next(a for a in report["artifacts"] if a.get("runtime") == "tflm")
    tflm.update(arena_bytes=16_672, flash_bytes=50_000)

    fits = evaluate_gates(report, {"max_arena": 17_000, "max_flash": 50_000})
    too_big = evaluate_gates(report, {"max_arena": 16_671, "max_flash": 49_999})

    assert [(r["gate"], r["artifact"], r["value"], r["passed"]) for r in fits] == [
        ("max_arena", "model.tflite on tflm", 16_672, True), ("max_flash", "model.tflite on tflm", 50_000, True)]
    assert [r["passed"] for r in too_big] == [False, False] and verdict(too_big) == 1


def test_arena_gate_on_a_report_without_tflite_micro_fails_as_unmeasured():
    (result,) = evaluate_gates(make_report(), {"max_arena": 1_000_000})

    assert (result["value"], result["passed"]) == (None, False)
