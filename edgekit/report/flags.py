"""Honest flags: when a quantized file does not deliver what its precision promises against its float
baseline on the same runtime, say so in words, as a pure function of report.json.

A quantized file (int8, dynamic, float16) is flagged when it is

- `larger`: more bytes than the float baseline of its format;
- `not_faster`: a p50 latency at or above the float baseline's on the same runtime, for a precision
  that promises speed (`promises_speed`: int8, dynamic);
- `slower`: a p50 latency more than `SLOWER_MARGIN` times the baseline's, for a precision that
  promises only size (float16, whose weights are widened back to float32 on a CPU: equal speed is
  expected there, and timing noise must not raise a flag).

`judge` decides (the run calls it, `edgekit.run.verdicts`); the flag it records in an artifact entry
(`artifact["flags"]`, see `edgekit.run.verdicts` for the whole shape) also carries the ops the file
runs in float and a quick measurement of the same model at the other precisions, from which
`best_alternative` picks what to suggest. `flag_lines` is the wording that report.md, report.html
and the console share, so the three cannot disagree.

    >>> judge({"bytes": 90, "latency_ms": {"p50": 2.0}}, {"bytes": 100, "latency_ms": {"p50": 1.0}}, True)
    [{'kind': 'not_faster', 'ratio': 2.0, 'value': 2.0, 'baseline_value': 1.0, 'unit': 'ms p50'}]
"""

from __future__ import annotations

from edgekit.report.formatting import format_number, format_percent
from edgekit.sizes import format_size

#: a size-only precision (float16) is flagged as slower only beyond this p50 ratio (timing noise)
SLOWER_MARGIN = 1.2

_PHRASES = {
    "larger": "is larger than",
    "not_faster": "is not faster than",
    "slower": "is slower than",
}


def _ratio(value, baseline) -> float | None:
    if value is None or not baseline:
        return None
    return round(float(value) / float(baseline), 3)


def _p50(entry: dict):
    return (entry.get("latency_ms") or {}).get("p50")


def judge(final: dict, baseline: dict, promises_speed: bool) -> list[dict]:
    """The flags `final` earns against `baseline` (two artifact entries of one format and runtime):
    a list of {"kind", "ratio", "value", "baseline_value", "unit"}, empty when the file pays off."""
    fired = []
    size_ratio = _ratio(final.get("bytes"), baseline.get("bytes"))
    if size_ratio is not None and size_ratio > 1.0:
        fired.append({"kind": "larger", "ratio": size_ratio, "value": final["bytes"],
                      "baseline_value": baseline["bytes"], "unit": "bytes"})
    speed_ratio = _ratio(_p50(final), _p50(baseline))
    if speed_ratio is not None:
        if promises_speed and speed_ratio >= 1.0:
            kind = "not_faster"
        elif not promises_speed and speed_ratio > SLOWER_MARGIN:
            kind = "slower"
        else:
            kind = None
        if kind:
            fired.append({"kind": kind, "ratio": speed_ratio, "value": _p50(final),
                          "baseline_value": _p50(baseline), "unit": "ms p50"})
    return fired


#: candidates within this factor of the fastest one count as equally fast (the smallest of them is suggested)
SAME_SPEED = 1.1


def best_alternative(candidates: list[dict], kinds: list[str]) -> dict | None:
    """What to try instead, among measured candidates of the same model ({"precision", "shipped",
    "p50_ratio", "bytes_ratio", ...}, ratios to the same model in float32): for a speed flag, of the
    candidates faster than the shipped file, the smallest among those within `SAME_SPEED` of the
    fastest (float32 itself when no precision beats it); for a size flag alone, the smallest
    candidate below float. None when no candidate does better than the shipped file."""
    measured = [c for c in candidates if c.get("p50_ratio") is not None and c.get("bytes_ratio") is not None]
    shipped = next((c for c in measured if c.get("shipped")), None)
    others = [c for c in measured if not c.get("shipped")]
    if shipped is None or not others:
        return None
    if {"not_faster", "slower"} & set(kinds):
        faster = [c for c in others if c["p50_ratio"] < shipped["p50_ratio"]]
        if not faster:
            return None
        fastest = min(c["p50_ratio"] for c in faster)
        return min((c for c in faster if c["p50_ratio"] <= fastest * SAME_SPEED),
                   key=lambda c: (c["bytes_ratio"], c["p50_ratio"]))
    smaller = [c for c in others if c["bytes_ratio"] < min(1.0, shipped["bytes_ratio"])]
    return min(smaller, key=lambda c: (c["bytes_ratio"], c["p50_ratio"])) if smaller else None


def flagged(report: dict) -> list[dict]:
    """The artifact entries that carry a flag, in report order."""
    return [a for a in report.get("artifacts", []) if (a.get("flags") or {}).get("kinds")]


def _quality(candidate: dict) -> str:
    if candidate.get("accuracy") is not None:
        return f"accuracy {format_percent(candidate['accuracy'])}"
    if candidate.get("mae") is not None:
        return f"MAE {format_number(candidate['mae'])}"
    return ""


def _kind_clause(kind: dict) -> str:
    if kind["unit"] == "bytes":
        return (f"{_PHRASES[kind['kind']]} its float baseline: {format_size(kind['value'])} vs "
                f"{format_size(kind['baseline_value'])} ({kind['ratio']:.2f}x the bytes)")
    return (f"{_PHRASES[kind['kind']]} its float baseline: p50 {format_number(kind['value'], 3)} ms vs "
            f"{format_number(kind['baseline_value'], 3)} ms ({kind['ratio']:.2f}x)")


def _float_ops(flags: dict) -> str | None:
    ops = flags.get("float_ops") or []
    if not ops:
        held = ", ".join(f"{o['op']} x{o['count']}" for o in flags.get("ops") or [])
        held = f" Its ops: {held}." if held else ""
        if flags.get("float_ops_from"):
            speed = any(k.get("unit") != "bytes" for k in flags.get("kinds") or [])
            where = ": the time goes to the runtime's integer kernels" if speed else ""
            return (f"No op computes in float in {flags.get('file', 'the file')} (read from the "
                    f"{flags['float_ops_from']}){where}.{held}")
        if flags.get("quantization"):
            return f"{flags.get('file', 'The file')} is {flags['quantization']}.{held}"
        return None
    listed = ", ".join(f"{o['op']} x{o['count']}" + (f" ({o['reason']})" if o.get("reason") else "") for o in ops)
    source = f", read from the {flags['float_ops_from']}" if flags.get("float_ops_from") else ""
    return f"Ops computing in float in {flags.get('file', 'the file')}{source}: {listed}."


def _float_weights(flags: dict) -> str | None:
    weights = flags.get("float_weights") or []
    if not weights:
        return None
    listed = ", ".join(f"{w['name']} ({w['dtype']}, {format_size(w['bytes'])})" for w in weights)
    return f"Largest tensors stored in float: {listed}."


def _runtime_ops(flags: dict, runtime) -> str | None:
    ops = flags.get("runtime_ops") or []
    if not ops:
        return None
    listed = ", ".join(f"{o['op']} x{o['count']}" + ("" if o.get("in_baseline") else " (not in the float baseline)")
                       for o in ops)
    return f"{runtime} runs these ops with its own kernels, outside its XNNPACK delegate: {listed}."


def _alternatives(flags: dict) -> list[str]:
    alternatives = flags.get("alternatives") or {}
    lines = []
    candidates = alternatives.get("candidates") or []
    shown = []
    for c in candidates:
        name = c["precision"] + (" (shipped)" if c.get("shipped") else "")
        if c.get("error"):
            shown.append(f"{name}: not measured ({c['error']})")
        elif c["precision"] == "float32" and not c.get("shipped"):
            shown.append(f"{name}: p50 {format_number(c.get('p50_ms'), 3)} ms, {format_size(c.get('bytes'))}")
        else:
            quality = _quality(c)
            shown.append(f"{name}: {c['p50_ratio']:.2f}x float p50, {c['bytes_ratio']:.2f}x the bytes"
                         + (f", {quality}" if quality else ""))
    if shown:
        lines.append(f"Measured alternatives (the same model on {alternatives.get('runtime')}, back to back, "
                     f"{alternatives.get('runs')} runs, quality on {alternatives.get('samples')} test samples): "
                     + "; ".join(shown) + ".")
    best = alternatives.get("best")
    if best and best["precision"] == "float32":
        lines.append("Ship float32 here: no other precision of this model measured faster than the shipped file "
                     f"({best['bytes_ratio']:.2f}x the bytes, p50 {format_number(best.get('p50_ms'), 3)} ms).")
    elif best:
        lines.append(f"Try precision: {best['precision']} ({best['p50_ratio']:.2f}x float p50 here, "
                     f"{best['bytes_ratio']:.2f}x the bytes).")
    elif alternatives.get("note"):
        lines.append(alternatives["note"])
    return lines


def flag_lines(artifact: dict) -> list[str]:
    """The sentences that explain an artifact's flag: what fired, which ops stay float, what was
    measured instead and what to try; empty for an artifact without a flag."""
    flags = artifact.get("flags") or {}
    kinds = flags.get("kinds") or []
    if not kinds:
        return []
    head = (f"{artifact.get('name')} ({artifact.get('precision')}) on {artifact.get('runtime')} "
            + "; and ".join(_kind_clause(k) for k in kinds)
            + f" ({flags.get('baseline', 'the baseline')}).")
    lines = [head]
    evidence = (_float_ops(flags), _runtime_ops(flags, artifact.get("runtime")), _float_weights(flags))
    lines += [line for line in evidence if line]
    lines += _alternatives(flags)
    return lines
