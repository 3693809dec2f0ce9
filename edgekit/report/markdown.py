"""report.json -> report.md (and report.html, see report_html.py): what a person reads after a run.

`render_markdown` is a pure function of the report dict, so `edgekit report RUN_DIR` re-renders a
run without re-measuring anything. Every figure in it was measured by running the exported file on
its runtime (LiteRT, ONNX Runtime); the teacher's row is the in-framework model.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.sizes import format_size

SCHEMA = "edgekit.report/1"


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _quality(report: dict, artifact: dict) -> str:
    return _pct(artifact.get("accuracy")) if report.get("metric", "accuracy") == "accuracy" else _num(artifact.get("mae"))


def _artifact_rows(report: dict) -> list[str]:
    metric = "accuracy" if report.get("metric", "accuracy") == "accuracy" else "MAE"
    rows = [
        f"| artifact | role | runtime | precision | bytes | gzip bytes | params | {metric} | agreement | p50 ms | p90 ms | p99 ms |",
        "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for a in report.get("artifacts", []):
        lat = a.get("latency_ms") or {}
        rows.append(
            f"| {a['name']} | {a.get('role', '')} | {a.get('runtime', '')} | {a.get('precision') or '-'} | "
            f"{_num(a.get('bytes'))} | {_num(a.get('gzip_bytes'))} | {_num(a.get('params'))} | {_quality(report, a)} | "
            f"{_pct(a.get('agreement'))} | {_num(lat.get('p50'), 3)} | {_num(lat.get('p90'), 3)} | {_num(lat.get('p99'), 3)} |"
        )
    return rows


def _gate_rows(report: dict) -> list[str]:
    gates = report.get("gates", [])
    if not gates:
        return ["No gates were set (`gates:` in the recipe)."]
    rows = ["| gate | artifact | limit | value | unit | result |", "|---|---|--:|--:|---|---|"]
    for g in gates:
        rows.append(f"| {g['gate']} | {g['artifact']} | {_num(g['limit'])} | {_num(g['value'])} | {g['unit']} | "
                    f"{'pass' if g['passed'] else '**FAIL**'} |")
    return rows


_DETAIL_KEYS = ("scheme", "student_params", "pruned_layers", "left_dense", "params_before", "params_after",
                "clusters", "sparsity_preserved")


def _details(stage: dict) -> str:
    details = stage.get("details") or {}
    shown = []
    for key in _DETAIL_KEYS:
        if key in details and details[key] not in (None, [], {}):
            value = details[key]
            shown.append(f"{key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else _num(value)}")
    return "; ".join(shown)


def _stage_rows(report: dict) -> list[str]:
    rows = ["| stage | what | wall time | in-framework figures |", "|---|---|--:|---|"]
    for s in report.get("stages", []):
        metrics = ", ".join(f"{k} {_num(v)}" for k, v in (s.get("metrics") or {}).items()) or "-"
        what = "; ".join(part for part in (s.get("summary", ""), _details(s)) if part)
        rows.append(f"| {s['name']} | {what} | {s['wall_s']:.2f} s | {metrics} |")
    return rows


def render_markdown(report: dict) -> str:
    passed = report.get("passed", True)
    verdict = "PASS: every gate passed" if passed else "FAIL: a gate failed"
    data = report.get("data", {})
    env = report.get("environment", {})
    final = next((a for a in report.get("artifacts", []) if a.get("role") == "final" and a.get("format") == "tflite"), None)
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
    lines += ["## Gates", "", *_gate_rows(report), "",
              "## Artifacts", "",
              "Every row but the teacher's was measured by running the exported file on its runtime, on the same "
              f"{data.get('test', '?')} test samples; agreement is top-1 agreement with the teacher. Latency: batch "
              f"{_latency_setting(report, 'batch')}, {_latency_setting(report, 'threads')} thread(s), "
              f"{_latency_setting(report, 'runs')} runs after {_latency_setting(report, 'warmup')} warm-up.", "",
              *_artifact_rows(report), "",
              "## Stages", "", *_stage_rows(report), "",
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


def _sparsity_section(report: dict) -> list[str]:
    """Per-layer weight sparsity of the final files, read back from each file, when any is sparse."""
    finals = [a for a in report.get("artifacts", []) if a.get("role") == "final" and a.get("layers")]
    if not any((a.get("weight_sparsity") or 0) >= 0.05 for a in finals):
        return []
    lines = ["## Weight sparsity", "",
             "Zero weights per layer, counted in the exported file (int8: values equal to the zero point).", ""]
    for a in finals:
        encoding = "sparse-encoded" if a.get("sparse_encoded") else "dense"
        lines += [f"**{a['name']}** ({encoding}): {_pct(a.get('weight_sparsity'))} of "
                  f"{_num(sum(layer['elements'] for layer in a['layers']))} weights are zero.", "",
                  "| layer | shape | weights | zeros | sparsity |", "|---|---|--:|--:|--:|"]
        for layer in a["layers"]:
            lines.append(f"| {layer['name'].split(';')[0][:60]} | {layer['shape']} | {_num(layer['elements'])} | "
                         f"{_num(layer['zeros'])} | {_pct(layer['sparsity'])} |")
        lines.append("")
    return lines


def _latency_setting(report: dict, key: str):
    for a in report.get("artifacts", []):
        if a.get("latency_ms"):
            return a["latency_ms"].get(key, "?")
    return "?"


def write_report(run_dir: Path, report: dict) -> None:
    """Write report.json, report.md and report.html (self-contained, with plots) into `run_dir`."""
    from edgekit.report.html import render_html  # imported here: report_html reuses this module's formatters

    run_dir = Path(run_dir)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(report), encoding="utf-8")


def load_report(path: Path) -> dict:
    """Read a report.json (or the one inside a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    return json.loads(path.read_text(encoding="utf-8"))
