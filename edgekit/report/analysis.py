"""The report's per-layer quantization sections, as rows of text both pages and the console share.

- `sensitivity_rows`: the `analysis` section `edgekit analyze` writes (layers ranked by the drop
  when each is quantized alone), or, in a `compress` report, the sensitivity ranking the
  `max_drop` search measured;
- `control_rows`: the attempts of a `max_drop` search (the quantize stage's `accuracy_control`).
"""

from __future__ import annotations

from edgekit.report.formatting import format_percent


#: stage details the pages show in this module's section rather than in the stage table
OWN_SECTION = {"accuracy_control"}


def equalized_text(records: list[dict]) -> str:
    """The pairs cross-layer equalization balanced: `conv2d → conv2d_1 (range imbalance 210 → 1.3)`."""
    return "; ".join(f"{r['first']} → {r['second']} (range imbalance {r['imbalance_before']:g} → "
                     f"{r['imbalance_after']:g})" for r in records) or "no pair"


def layers_text(layers: dict) -> str:
    return ", ".join(f"{name}: {precision}" for name, precision in layers.items()) or "none"


#: stage detail -> how the pages write it
DETAIL_TEXT = {"equalized": equalized_text, "layers": layers_text}


def _drop(value) -> str:
    return "-" if value is None else f"{100 * value:+.2f}"


def _per_format(values: dict) -> str:
    return ", ".join(f"{fmt} {_drop(v)}" for fmt, v in values.items()) or "-"


def control_record(report: dict) -> dict | None:
    """The quantize stage's `accuracy_control` record, if the run searched for `max_drop`."""
    return next(((s.get("details") or {}).get("accuracy_control") for s in report.get("stages", [])
                 if (s.get("details") or {}).get("accuracy_control")), None)


def sensitivity_rows(report: dict) -> list[dict]:
    """One row per layer, most sensitive first: drops in points (+ means worse) per format, SNR (dB)
    per format, activation range ratios."""
    analysis = report.get("analysis")
    if analysis:
        return [{"layer": row["layer"], "quantized_alone": _per_format(row.get("quantized_alone") or {}),
                 "float_alone": _per_format(row.get("float_alone") or {}),
                 "snr": ", ".join(f"{fmt} {v:.1f}" for fmt, v in (row.get("snr_db") or {}).items()) or "-",
                 "range_ratio": "-" if row.get("range_ratio") is None else f"{row['range_ratio']:.1f}",
                 "channel_ratio": "-" if row.get("channel_ratio") is None else f"{row['channel_ratio']:.1f}"}
                for row in analysis.get("layers", [])]
    control = control_record(report)
    return [{"layer": row["layer"], "quantized_alone": _drop(row["drop"]), "float_alone": "-", "snr": "-",
             "range_ratio": "-", "channel_ratio": "-"} for row in (control or {}).get("sensitivity", [])]


def control_rows(report: dict) -> list[dict]:
    """One row per plan the `max_drop` search tried, in order, the chosen one marked."""
    control = control_record(report)
    if not control:
        return []
    rows = []
    for attempt in control["attempts"]:
        layers = [f"{k}: {v}" for k, v in attempt["plan"]["layers"].items()]
        calibration = attempt["plan"].get("calibration", "minmax")
        ranges = [f"{calibration} ranges"] if calibration != "minmax" else []
        rows.append({"attempt": attempt["attempt"], "chosen": attempt["attempt"] == control["chosen"],
                     "layers": ", ".join(ranges + layers) or "-",
                     "drop": _per_format({f: v["drop"] for f, v in attempt["formats"].items()}),
                     "bytes": ", ".join(f"{f} {v['bytes']:,}" for f, v in attempt["formats"].items()),
                     "p50": ", ".join(f"{f} {v['p50_ms']:.4f}" for f, v in attempt["formats"].items()
                                      if v.get("p50_ms") is not None) or "-"})
    return rows


def sensitivity_sentence(report: dict) -> str:
    """What the sensitivity table measured, in one sentence."""
    analysis = report.get("analysis")
    if analysis:
        reference = analysis.get(f"float_{analysis['metric']}")
        return (f"Drops in points of {analysis['metric']} against the float model "
                f"({format_percent(reference) if analysis['metric'] == 'accuracy' else reference}) on "
                f"{analysis['samples']} validation samples, each file run on its runtime; SNR (on calibration "
                "samples) from "
                f"{', '.join(f'{k}: {v}' for k, v in analysis.get('tools', {}).items()) or 'no tool'}. "
                "Range ratio: largest |activation| over its 99.9th percentile; channel ratio: largest channel "
                "range over the median channel's (an outlier channel).")
    control = control_record(report)
    if control:
        return (f"max_drop {control['max_drop']:g}: plans tried on the validation split; "
                f"{'met by' if control['met'] else 'not met; shipped the closest,'} {control['chosen']}. "
                "Sensitivity: drop in points when the layer alone is quantized.")
    return ""


def analysis_markdown(report: dict) -> list[str]:
    """The Markdown section of both tables, or nothing."""
    rows, attempts = sensitivity_rows(report), control_rows(report)
    if not rows and not attempts:
        return []
    lines = ["## Quantization sensitivity", "", sensitivity_sentence(report), ""]
    if attempts:
        lines += ["| attempt | layers | drop (points) | bytes | p50 ms |", "|---|---|---|---|---|"]
        lines += [f"| {'**' + a['attempt'] + '**' if a['chosen'] else a['attempt']} | {a['layers']} | {a['drop']} "
                  f"| {a['bytes']} | {a['p50']} |" for a in attempts]
        lines.append("")
    if rows:
        lines += ["| layer | drop, quantized alone | drop, float alone | SNR dB | range ratio | channel ratio |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['layer']} | {r['quantized_alone']} | {r['float_alone']} | {r['snr']} | {r['range_ratio']} "
                  f"| {r['channel_ratio']} |" for r in rows]
        lines.append("")
    return lines
