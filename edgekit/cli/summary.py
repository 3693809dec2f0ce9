"""The few lines `edgekit compress` prints at the end: artifacts, gates, verdict (or JSON)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgekit.report.flags import flag_lines, flagged
from edgekit.sizes import format_size

_ARTIFACT_KEYS = ("name", "role", "format", "runtime", "precision", "bytes", "gzip_bytes", "params",
                  "accuracy", "mae", "agreement", "latency_ms", "flags")


def summary_dict(report: dict, run_dir: Path) -> dict:
    """The machine-readable summary printed by `--json`."""
    return {
        "name": report.get("name"),
        "run_dir": str(run_dir),
        "exit_code": report.get("exit_code"),
        "passed": report.get("passed"),
        "metric": report.get("metric"),
        "artifacts": [{k: a.get(k) for k in _ARTIFACT_KEYS if k in a} for a in report.get("artifacts", [])],
        "gates": report.get("gates", []),
        "warnings": report.get("warnings", []),
    }


def _quality(report: dict, artifact: dict) -> str:
    if report.get("metric") == "mae":
        return "-" if artifact.get("mae") is None else f"{artifact['mae']:.4f}"
    return "-" if artifact.get("accuracy") is None else f"{100 * artifact['accuracy']:.2f}%"


def print_summary(console: Console, report: dict, run_dir: Path) -> None:
    table = Table(title=f"edgekit · {report.get('name')}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("artifact", "runtime", "size", "gzip", report.get("metric", "accuracy"), "agree", "p50 ms"):
        table.add_column(column, justify="left" if column in ("artifact", "runtime") else "right", no_wrap=True)
    for a in report.get("artifacts", []):
        lat = (a.get("latency_ms") or {}).get("p50")
        agreement = a.get("agreement")
        table.add_row(a["name"], a.get("runtime") or "-", format_size(a.get("bytes")), format_size(a.get("gzip_bytes")),
                      _quality(report, a), "-" if agreement is None else f"{100 * agreement:.1f}%",
                      "-" if lat is None else f"{lat:.3f}")
    console.print(table)
    for gate in report.get("gates", []):
        mark = "[green]pass[/]" if gate["passed"] else "[bold red]FAIL[/]"
        console.print(f"  {mark} {gate['gate']} {escape('[' + gate['artifact'] + ']')}: {gate['value']} "
                      f"(limit {gate['limit']} {escape(gate['unit'])})", soft_wrap=True)
    for artifact in flagged(report):
        first, *rest = flag_lines(artifact)
        console.print(f"  [bold yellow]flag[/] {escape(first)}", soft_wrap=True)
        for line in rest:
            console.print(f"       {escape(line)}", soft_wrap=True)
    verdict = "[green]all gates passed[/]" if report.get("passed") else "[bold red]a gate failed[/] (exit 1)"
    console.print(f"{verdict}; report: {escape(str(Path(run_dir) / 'report.md'))}")
