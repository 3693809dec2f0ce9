"""Honest flags (issue 11, point 5): the pure parts. When a flag fires, what the report says
(edgekit.report.flags), how the alternatives' ratios and the suggestion are computed
(edgekit.run.verdicts.with_ratios, best_alternative), how report.md, report.html and the console
summary show it, and which ops LiteRT leaves outside XNNPACK (from a node list). No TF / torch."""

from __future__ import annotations

import io

from rich.console import Console

from edgekit.cli.summary import print_summary, summary_dict
from edgekit.precision import PLANS
from edgekit.report.flags import best_alternative, flag_lines, flagged, judge
from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown
from edgekit.run.verdicts import with_ratios
from edgekit.runtimes.litert import _undelegated
from tests.unit.test_report import make_report, section


def _entry(bytes_, p50):
    return {"bytes": bytes_, "latency_ms": {"p50": p50}}


def test_an_int8_file_slower_than_float_is_not_faster():
    fired = judge(_entry(30_000, 2.0), _entry(100_000, 0.3), promises_speed=True)

    assert [f["kind"] for f in fired] == ["not_faster"]
    assert fired[0]["ratio"] == round(2.0 / 0.3, 3) and fired[0]["unit"] == "ms p50"


def test_a_file_larger_than_float_is_flagged_even_when_faster():
    fired = judge(_entry(120_000, 0.1), _entry(100_000, 0.3), promises_speed=True)

    assert fired == [{"kind": "larger", "ratio": 1.2, "value": 120_000, "baseline_value": 100_000, "unit": "bytes"}]


def test_a_file_that_pays_off_gets_no_flag():
    assert judge(_entry(30_000, 0.1), _entry(100_000, 0.3), promises_speed=True) == []
    assert judge({"bytes": 30_000, "latency_ms": None}, _entry(100_000, 0.3), promises_speed=True) == []


def test_float16_promises_size_only_and_is_flagged_only_when_clearly_slower():
    assert PLANS["float16"].promises_speed is False and PLANS["int8"].promises_speed and PLANS["dynamic"].promises_speed
    assert judge(_entry(50_000, 0.31), _entry(100_000, 0.3), promises_speed=False) == []
    assert [f["kind"] for f in judge(_entry(50_000, 0.5), _entry(100_000, 0.3), promises_speed=False)] == ["slower"]


def _candidates():
    return with_ratios([
        {"precision": "float32", "bytes": 1000, "p50_ms": 1.0, "accuracy": 0.9},
        {"precision": "int8", "shipped": True, "bytes": 300, "p50_ms": 6.0, "accuracy": 0.9},
        {"precision": "dynamic", "bytes": 350, "p50_ms": 0.6, "accuracy": 0.9},
        {"precision": "float16", "bytes": 500, "p50_ms": 1.01, "accuracy": 0.9},
    ])


def test_ratios_are_to_the_float32_candidate_measured_in_the_same_loop():
    by_name = {c["precision"]: c for c in _candidates()}

    assert by_name["int8"]["p50_ratio"] == 6.0 and by_name["int8"]["bytes_ratio"] == 0.3
    assert by_name["dynamic"]["p50_ratio"] == 0.6 and by_name["float32"]["p50_ratio"] == 1.0
    failed = with_ratios([{"precision": "float32", "bytes": 10, "p50_ms": 1.0}, {"precision": "dynamic", "error": "x"}])
    assert "p50_ratio" not in failed[1]


def test_the_suggestion_is_the_fastest_quantized_candidate_that_beats_the_shipped_file():
    assert best_alternative(_candidates(), ["not_faster"])["precision"] == "dynamic"
    only_float = [c for c in _candidates() if c["precision"] in ("float32", "int8")]
    assert best_alternative(only_float, ["not_faster"])["precision"] == "float32"
    same_speed = with_ratios([{"precision": "float32", "bytes": 1000, "p50_ms": 1.0},
                              {"precision": "int8", "shipped": True, "bytes": 700, "p50_ms": 5.7},
                              {"precision": "dynamic", "bytes": 999, "p50_ms": 1.0},
                              {"precision": "float16", "bytes": 900, "p50_ms": 1.02}])
    assert best_alternative(same_speed, ["not_faster"])["precision"] == "float16"  # as fast, and smallest
    larger = with_ratios([{"precision": "float32", "bytes": 1000, "p50_ms": 1.0},
                          {"precision": "int8", "shipped": True, "bytes": 1200, "p50_ms": 0.5},
                          {"precision": "float16", "bytes": 500, "p50_ms": 1.0}])
    assert best_alternative(larger, ["larger"])["precision"] == "float16"
    assert best_alternative(larger[:2], ["larger"]) is None


def flagged_report() -> dict:
    report = make_report(passed=True, gates=[])
    final = next(a for a in report["artifacts"] if a["name"] == "model.tflite")
    candidates = _candidates()
    final["flags"] = {
        "kinds": judge(_entry(51_234, 2.5), _entry(200_000, 0.42), promises_speed=True),
        "baseline": "baseline.tflite", "file": "model.tflite", "quantization": "mixed",
        "float_ops": [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "count": 1, "reason": "float32 inputs/outputs"}],
        "float_ops_from": "tensor types",
        "float_weights": [{"name": "lstm/kernel", "dtype": "float32", "bytes": 4096}],
        "runtime_ops": [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "count": 1, "in_baseline": True},
                        {"op": "SOFTMAX", "count": 1, "in_baseline": False}],
        "alternatives": {"runtime": "litert", "runs": 30, "warmup": 3, "samples": 256, "candidates": candidates,
                         "best": best_alternative(candidates, ["not_faster"])},
    }
    return report


def test_the_wording_names_the_flag_the_float_ops_and_the_measured_alternative():
    report = flagged_report()
    lines = flag_lines(flagged(report)[0])
    text = "\n".join(lines)

    assert lines[0].startswith("model.tflite (int8) on litert is not faster than its float baseline")
    assert "(baseline.tflite)" in lines[0] and "5.95x" in lines[0]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM x1 (float32 inputs/outputs)" in text
    assert "SOFTMAX x1 (not in the float baseline)" in text
    assert "lstm/kernel (float32, 4.0 KiB)" in text
    assert "dynamic: 0.60x float p50, 0.35x the bytes" in text
    assert "Try precision: dynamic (0.60x float p50 here, 0.35x the bytes)" in text
    no_float = {**flagged(report)[0], "flags": {**flagged(report)[0]["flags"], "float_ops": [],
                                                "ops": [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "count": 1}]}}
    assert ("No op computes in float in model.tflite (read from the tensor types): the time goes to the runtime's "
            "integer kernels. Its ops: UNIDIRECTIONAL_SEQUENCE_LSTM x1.") in "\n".join(flag_lines(no_float))
    dynamic = {**no_float, "flags": {**no_float["flags"], "float_ops_from": None,
                                     "quantization": "int8 weights, float activations (dynamic range)",
                                     "ops": [{"op": "ConvInteger", "count": 2}]}}
    assert ("model.tflite is int8 weights, float activations (dynamic range). Its ops: ConvInteger x2."
            in "\n".join(flag_lines(dynamic)))
    assert [a["name"] for a in flagged(make_report())] == [] and flag_lines(make_report()["artifacts"][3]) == []


def test_report_md_and_html_show_the_flag_only_when_one_fired():
    report = flagged_report()
    markdown = render_markdown(report)
    html = render_html(report)

    flags = section(markdown, "Flags")
    assert "- **model.tflite (int8) on litert is not faster" in flags and "Try precision: dynamic" in flags
    assert 'href="#flags"' in html and 'id="flags"' in html
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM x1" in html and "Try precision: dynamic" in html
    assert "## Flags" not in render_markdown(make_report()) and 'id="flags"' not in render_html(make_report())


def test_the_console_summary_prints_the_flag_and_json_carries_it():
    out = io.StringIO()
    print_summary(Console(file=out, width=400, highlight=False), flagged_report(), "runs/x")
    quiet = io.StringIO()
    print_summary(Console(file=quiet, width=400, highlight=False), make_report(passed=True, gates=[]), "runs/x")

    assert "flag model.tflite (int8) on litert is not faster than its float baseline" in out.getvalue()
    assert "Try precision: dynamic" in out.getvalue()
    assert "flag " not in quiet.getvalue()
    summary = summary_dict(flagged_report(), "runs/x")
    flagged_entry = next(a for a in summary["artifacts"] if a["name"] == "model.tflite")
    assert flagged_entry["flags"]["alternatives"]["best"]["precision"] == "dynamic"
    assert "flags" not in next(a for a in summary["artifacts"] if a["name"] == "model.onnx")


def test_ops_outside_the_xnnpack_partition_are_the_undelegated_ones():
    # t0 -> LSTM -> t1 -> SLICE -> t2 -> FC -> t3 -> SOFTMAX -> t4; XNNPACK took FC (t2 -> t3)
    ops = [{"index": 0, "op_name": "UNIDIRECTIONAL_SEQUENCE_LSTM", "inputs": [0, 9], "outputs": [1]},
           {"index": 1, "op_name": "STRIDED_SLICE", "inputs": [1], "outputs": [2]},
           {"index": 2, "op_name": "FULLY_CONNECTED", "inputs": [2, 8], "outputs": [3]},
           {"index": 3, "op_name": "SOFTMAX", "inputs": [3], "outputs": [4]},
           {"index": 4, "op_name": "DELEGATE", "inputs": [2, 8], "outputs": [3]}]

    assert _undelegated(ops) == {"UNIDIRECTIONAL_SEQUENCE_LSTM": 1, "STRIDED_SLICE": 1, "SOFTMAX": 1}
    ops[4]["outputs"] = [4]
    assert _undelegated(ops) == {"UNIDIRECTIONAL_SEQUENCE_LSTM": 1, "STRIDED_SLICE": 1}


def test_a_file_no_runtime_ran_keeps_its_size_flag_without_alternatives(tmp_path):
    from types import SimpleNamespace

    from edgekit.progress import SILENT
    from edgekit.run.verdicts import flag_artifacts

    entries = [{"name": "baseline.onnx", "role": "baseline", "format": "onnx", "runtime": None, "bytes": 100,
                "latency_ms": None, "precision": "float32"},
               {"name": "model.onnx", "role": "final", "format": "onnx", "runtime": None, "bytes": 150,
                "latency_ms": None, "precision": "int8"}]

    def never():
        raise AssertionError("the final model is needed only to measure alternatives")

    out = flag_artifacts(entries, never, None, SimpleNamespace(workdir=tmp_path, progress=SILENT))

    flags = out[1]["flags"]
    assert [k["kind"] for k in flags["kinds"]] == ["larger"] and "evidence_error" in flags
    assert flags["alternatives"]["candidates"] == [] and "names no runtime" in flags["alternatives"]["note"]
    assert "flags" not in out[0]
    assert "No alternative was measured" in "\n".join(flag_lines({**out[1]}))
