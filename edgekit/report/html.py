"""report.json -> report.html: one self-contained page with the verdict, every number and the plots.

`render_html` is a pure function of the report dict (like `render_markdown`), so `edgekit report
RUN_DIR` can re-render a run without measuring anything. The page must open anywhere a run
directory is copied to (a CI artifact, an air-gapped laptop): CSS is inline, plots are inline SVG
(edgekit.report.plots), and nothing is fetched from the network.

The layout lives in the Jinja2 template templates/report.html.j2 (autoescaped); this module turns
the report into the strings the page shows, formatted as report.md formats them. Jinja2 and
matplotlib are imported only when a page is rendered, so `import edgekit.report` stays cheap.

>>> from edgekit.report import load_report
>>> html = render_html(load_report("runs/quickstart"))      # doctest: +SKIP
>>> Path("report.html").write_text(html, encoding="utf-8")  # doctest: +SKIP
"""

from __future__ import annotations

from functools import lru_cache

from edgekit.report.analysis import (DETAIL_TEXT, OWN_SECTION, control_rows, sensitivity_rows,
                                     sensitivity_sentence)
from edgekit.report.contents import compute_sentence, latency_settings, quality_key, quality_label
from edgekit.report.flags import flag_lines, flagged
from edgekit.report.formatting import format_number, format_percent, format_quality, format_size
from edgekit.report.plots import report_plots
from edgekit.report.search import failed_rows, pareto_rows, search_summary

TEMPLATE = "report.html.j2"


def render_html(report: dict) -> str:
    """The whole report as one HTML document: no external URL, font or script."""
    return _template().render(page_values(report))


@lru_cache(maxsize=1)
def _template():
    """The page template, loaded from the installed package (it ships as package data)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("edgekit.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template(TEMPLATE)


def page_values(report: dict) -> dict:
    """Everything the template shows, as plain (not yet escaped) text, plus the plots' SVG markup."""
    return {
        "title": f"edgekit report: {report.get('name', '')}",
        "created": str(report.get("created", "")),
        "edgekit_version": str(report.get("edgekit_version", "")),
        "task": str(report.get("task", "")),
        "recipe": str(report["recipe"]) if report.get("recipe") else None,
        "verdict": _verdict(report),
        "gates": [_gate(g) for g in report.get("gates") or []],
        "flags": [{"name": str(a.get("name", "")), "lines": flag_lines(a)} for a in flagged(report)],
        "test_samples": str(report.get("data", {}).get("test", "?")),
        "latency_setting": _latency_sentence(report),
        "quality_label": quality_label(report),
        "artifacts": [_artifact(report, a) for a in report.get("artifacts", [])],
        "search": _search(report),
        "plots": report_plots(report),
        "sensitivity": sensitivity_rows(report),
        "control": control_rows(report),
        "sensitivity_sentence": sensitivity_sentence(report),
        "stages": [_stage(s) for s in report.get("stages", [])],
        "compute_sentence": compute_sentence(report),
        "warnings": [str(w) for w in report.get("warnings") or []],
        "data": _data_rows(report),
        "environment": _environment(report),
    }


def _verdict(report: dict) -> dict:
    """pass/fail, the sentence that says it (how many gates failed) and the exit code."""
    passed = report.get("passed", True)
    gates = report.get("gates") or []
    failed = sum(not g.get("passed") for g in gates)
    if passed:
        text = "PASS: every gate passed" if gates else "PASS: no gates were set"
    else:
        text = f"FAIL: {failed} of {len(gates)} gate(s) failed" if failed else "FAIL"
    return {"state": "pass" if passed else "fail", "text": text, "exit_code": str(report.get("exit_code", 0))}


def _gate(gate: dict) -> dict:
    return {"gate": str(gate.get("gate", "")), "artifact": str(gate.get("artifact", "")),
            "limit": format_number(gate.get("limit")), "value": format_number(gate.get("value")),
            "unit": str(gate.get("unit", "")), "passed": bool(gate.get("passed"))}


def _latency_sentence(report: dict) -> str:
    latency = latency_settings(report)
    if not latency:
        return ""
    return (f" Latency: batch {latency.get('batch', '?')}, {latency.get('threads', '?')} thread(s), "
            f"{latency.get('runs', '?')} runs after {latency.get('warmup', '?')} warm-up.")


def _artifact(report: dict, artifact: dict) -> dict:
    """One row of the artifact table; `size` (human-readable) is empty when the file size is unknown."""
    latency = artifact.get("latency_ms") or {}
    size = artifact.get("bytes")
    return {
        "name": str(artifact.get("name", "")),
        **{key: str(artifact.get(key) or "-") for key in ("role", "format", "runtime", "precision")},
        "bytes": format_number(size),
        "size": format_size(size) if size else "",
        "gzip_bytes": format_number(artifact.get("gzip_bytes")),
        "quality": format_quality(report, artifact.get(quality_key(report))),
        "agreement": format_percent(artifact.get("agreement")),
        "p50": format_number(latency.get("p50"), 3),
        "p90": format_number(latency.get("p90"), 3),
    }


def _search(report: dict) -> dict | None:
    """How `edgekit search` found this run (summary, Pareto rows, failed trials); None when it was not a search."""
    if not report.get("search"):
        return None
    return {"summary": search_summary(report), "pareto": pareto_rows(report), "failed": failed_rows(report)}


def _stage(stage: dict) -> dict:
    """One row of the stage table: every detail the stage recorded, its wall time and in-framework metrics."""
    return {
        "name": str(stage.get("name", "")),
        "summary": str(stage.get("summary", "")),
        "details": [(key.replace("_", " "), DETAIL_TEXT.get(key, _detail_value)(value))
                    for key, value in (stage.get("details") or {}).items() if key not in OWN_SECTION],
        "wall_time": f"{stage.get('wall_s') or 0:.2f} s",
        "metrics": ", ".join(f"{k} {format_number(v)}" for k, v in (stage.get("metrics") or {}).items()) or "-",
    }


def _detail_value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {format_number(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return format_number(value)


def _data_rows(report: dict) -> list[tuple[str, str]]:
    """(field, value) rows of the data table; fields the report lacks are left out."""
    data = report.get("data") or {}
    preprocessing = ", ".join(f"{k} {v}" for k, v in (data.get("preprocessing") or {}).items()) or None
    rows = (
        ("description", data.get("description")),
        ("train / validation / test", f"{data.get('train')} / {data.get('validation')} / {data.get('test')}"),
        ("calibration samples", data.get("calibration")),
        ("input shape", data.get("input_shape")),
        ("outputs", data.get("num_classes")),
        ("preprocessing", preprocessing),
    )
    return [(field, str(value)) for field, value in rows if value is not None]


def _environment(report: dict) -> dict:
    env = report.get("environment") or {}
    return {"platform": str(env.get("platform", "")), "cpu": str(env.get("cpu", "")),
            "cores": str(env.get("cores", "?")), "python": str(env.get("python", "")),
            "packages": [(str(k), str(v)) for k, v in (env.get("packages") or {}).items()]}
