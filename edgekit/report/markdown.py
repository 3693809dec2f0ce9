"""report.json -> report.md: what a person reads after a run, as plain Markdown.

`render_markdown` is a pure function of the report dict, so `edgekit report RUN_DIR` re-renders a
run without re-measuring anything. Every figure in it was measured by running the exported file on
its runtime (LiteRT, ONNX Runtime); the teacher's row is the in-framework model.
"""

from __future__ import annotations

from edgekit.report.analysis import analysis_markdown
from edgekit.report.contents import (compute_sentence, final_artifact, final_artifacts_with_layers, latency_settings,
                                     quality_key, quality_label)
from edgekit.report.flags import flag_lines, flagged
from edgekit.report.formatting import format_number, format_percent, format_quality, format_size
from edgekit.report.search import failed_rows, pareto_rows, search_summary

# stage details worth a mention in the stage table, in this order (report.html lists them all)
_DETAIL_KEYS = ("scheme", "student_params", "pruned_layers", "left_dense", "params_before", "params_after",
                "clusters", "sparsity_preserved", "left_unclustered")


def render_markdown(report: dict) -> str:
    """The whole report as Markdown: verdict, gates, artifacts, search, stages, data, sparsity, warnings,
    environment."""
    passed = report.get("passed", True)
    verdict = "PASS: every gate passed" if passed else "FAIL: a gate failed"
    data = report.get("data", {})
    env = report.get("environment", {})
    final = final_artifact(report, "tflite")
    latency = latency_settings(report)
    lines = [
        f"# edgekit report: {report.get('name', '')}",
        "",
        f"**{verdict}** (exit code {report.get('exit_code', 0)}). Created {report.get('created', '')} by edgekit "
        f"{report.get('edgekit_version', '')}.",
        "",
    ]
    if final and final.get("bytes"):
        lines += [f"Final .tflite: {format_size(final['bytes'])} ({format_size(final.get('gzip_bytes'))} gzipped), "
                  f"{report.get('metric', 'accuracy')} {_quality(report, final)} on {final.get('runtime')}.", ""]
    lines += ["## Gates", "", *_gate_rows(report), ""]
    lines += _flags_section(report)
    lines += analysis_markdown(report)
    if report.get("artifacts"):  # `edgekit analyze` ships no file
        lines += ["## Artifacts", "",
                  "Every row but the teacher's was measured by running the exported file on its runtime, on the "
                  f"same {data.get('test', '?')} test samples; agreement is top-1 agreement with the teacher. "
                  f"Latency: batch {latency.get('batch', '?')}, {latency.get('threads', '?')} thread(s), "
                  f"{latency.get('runs', '?')} runs after {latency.get('warmup', '?')} warm-up.", "",
                  *_artifact_rows(report), "", *_runtime_notes(report)]
    lines += _search_section(report)
    trained_on = compute_sentence(report)
    lines += ["## Stages", "", *([trained_on, ""] if trained_on else []), *_stage_rows(report), "",
              "## Data", "",
              f"{data.get('description', '')}: {data.get('train')} train, {data.get('validation')} validation, "
              f"{data.get('test')} test, {data.get('calibration')} calibration samples of shape "
              f"{data.get('input_shape')}; {data.get('num_classes')} outputs.", ""]
    lines += _sparsity_section(report)
    if report.get("warnings"):
        lines += ["## Warnings", "", *[f"- {w}" for w in report["warnings"]], ""]
    lines += ["## Environment", "",
              f"{env.get('platform', '')}; CPU: {env.get('cpu', '')} ({env.get('cores', '?')} cores); "
              f"Python {env.get('python', '')}.", "",
              "| package | version |", "|---|---|",
              *[f"| {k} | {v} |" for k, v in (env.get("packages") or {}).items()], ""]
    return "\n".join(lines)


def _flags_section(report: dict) -> list[str]:
    """Quantized files that are larger than, or not faster than, their float baseline (see
    `edgekit.report.flags`), with the ops left in float and the alternatives measured; none when
    every quantized file pays off."""
    found = flagged(report)
    if not found:
        return []
    lines = ["## Flags", ""]
    for artifact in found:
        first, *rest = flag_lines(artifact)
        lines += [f"- **{first}**", *[f"  - {line}" for line in rest]]
    return lines + [""]


def _quality(report: dict, artifact: dict) -> str:
    return format_quality(report, artifact.get(quality_key(report)))


def _gate_rows(report: dict) -> list[str]:
    gates = report.get("gates", [])
    if not gates:
        return ["No gates were set (`gates:` in the recipe)."]
    rows = ["| gate | artifact | limit | value | unit | result |", "|---|---|--:|--:|---|---|"]
    for g in gates:
        rows.append(f"| {g['gate']} | {g['artifact']} | {format_number(g['limit'])} | {format_number(g['value'])} | "
                    f"{g['unit']} | {'pass' if g['passed'] else '**FAIL**'} |")
    return rows


def _artifact_rows(report: dict) -> list[str]:
    rows = [
        "| artifact | role | runtime | precision | bytes | gzip bytes | params | "
        f"{quality_label(report)} | agreement | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for a in report.get("artifacts", []):
        lat = a.get("latency_ms") or {}
        rows.append(
            f"| {a['name']} | {a.get('role', '')} | {a.get('runtime', '')} | {a.get('precision') or '-'} | "
            f"{format_number(a.get('bytes'))} | {format_number(a.get('gzip_bytes'))} | "
            f"{format_number(a.get('params'))} | {_quality(report, a)} | {format_percent(a.get('agreement'))} | "
            f"{format_number(lat.get('p50'), 3)} | {format_number(lat.get('p90'), 3)} | "
            f"{format_number(lat.get('p99'), 3)} |"
        )
    return rows


def _runtime_notes(report: dict) -> list[str]:
    """One line per artifact whose runtime measured more than the table shows: TFLite Micro's
    arena and flash bytes, and that its latency is the host's, not the microcontroller's."""
    lines = []
    for a in report.get("artifacts", []):
        if a.get("arena_bytes") is None and not a.get("latency_note"):
            continue
        parts = [f"arena {format_number(a.get('arena_bytes'))} bytes (smallest that allocates; "
                 f"TFLM's allocation report: {format_number(a.get('arena_report_bytes'))})",
                 f"flash {format_number(a.get('flash_bytes'))} bytes"]
        if a.get("latency_note"):
            parts.append(f"p50/p90/p99 are {a['latency_note']}")
        lines.append(f"- {a['name']} on {a.get('runtime')}: " + "; ".join(parts) + ".")
    return lines + [""] if lines else []


def _details(stage: dict) -> str:
    details = stage.get("details") or {}
    shown = []
    for key in _DETAIL_KEYS:
        if key in details and details[key] not in (None, [], {}):
            value = details[key]
            shown.append(f"{key.replace('_', ' ')}: "
                         f"{', '.join(value) if isinstance(value, list) else format_number(value)}")
    return "; ".join(shown)


def _stage_rows(report: dict) -> list[str]:
    rows = ["| stage | what | wall time | in-framework figures |", "|---|---|--:|---|"]
    for s in report.get("stages", []):
        metrics = ", ".join(f"{k} {format_number(v)}" for k, v in (s.get("metrics") or {}).items()) or "-"
        what = "; ".join(part for part in (s.get("summary", ""), _details(s)) if part)
        rows.append(f"| {s['name']} | {what} | {s['wall_s']:.2f} s | {metrics} |")
    return rows


def _search_section(report: dict) -> list[str]:
    """How `edgekit search` found this run: the summary, the Pareto points (the chosen trial marked) and
    each failed trial's error; none when the run was not a search."""
    if not report.get("search"):
        return []
    lines = ["## Search", "", search_summary(report), ""]
    rows = pareto_rows(report)
    if rows:
        lines += ["Pareto points: the completed trials no other trial beats on every objective.", "",
                  f"| trial | params | bytes | p50 ms | {quality_label(report)} | meets every gate |",
                  "|---|---|--:|--:|--:|---|"]
        lines += [f"| {_trial_cell(row)} | {', '.join(f'{k}={v}' for k, v in row['params']) or '-'} | "
                  f"{row['bytes']} | {row['p50']} | {row['quality']} | {row['feasible']} |" for row in rows]
        lines.append("")
    failed = failed_rows(report)
    if failed:
        lines += ["Failed trials:", "", *[f"- trial {row['trial']}: {row['error']}" for row in failed], ""]
    return lines


def _trial_cell(row: dict) -> str:
    if not row["chosen"]:
        return row["trial"]
    return f"**{row['trial']}** (chosen{'' if row['pareto'] else ', not a Pareto point'})"


def _sparsity_section(report: dict) -> list[str]:
    """Per-layer weight sparsity of the final files, read back from each file, when any is sparse."""
    finals = final_artifacts_with_layers(report)
    if not any((a.get("weight_sparsity") or 0) >= 0.05 for a in finals):
        return []
    lines = ["## Weight sparsity", "",
             "Zero weights per layer, counted in the exported file (int8: values equal to the zero point).", ""]
    for a in finals:
        encoding = "sparse-encoded" if a.get("sparse_encoded") else "dense"
        lines += [f"**{a['name']}** ({encoding}): {format_percent(a.get('weight_sparsity'))} of "
                  f"{format_number(sum(layer['elements'] for layer in a['layers']))} weights are zero.", "",
                  "| layer | shape | weights | zeros | sparsity |", "|---|---|--:|--:|--:|"]
        for layer in a["layers"]:
            lines.append(f"| {layer['name'].split(';')[0][:60]} | {layer['shape']} | "
                         f"{format_number(layer['elements'])} | {format_number(layer['zeros'])} | "
                         f"{format_percent(layer['sparsity'])} |")
        lines.append("")
    return lines
