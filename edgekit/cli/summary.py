"""The few lines `edgekit compress` prints at the end: artifacts, gates, verdict (or JSON)."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgekit.report.flags import flag_lines, flagged
from edgekit.report.formatting import format_number
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


_POINT_KEYS = ("trial", "state", "params", "values", "bytes", "p50_ms", "accuracy", "mae", "feasible", "pareto",
               "wall_s", "error")


def search_summary_dict(report: dict, run_dir: Path) -> dict:
    """`edgekit search --json`: the chosen run's summary and the search's outcome."""
    search = report.get("search") or {}
    return {**summary_dict(report, run_dir),
            "search": {**{k: v for k, v in search.items() if k != "points"},
                       "points": [{k: p.get(k) for k in _POINT_KEYS} for p in search.get("points", [])]}}


def print_search_summary(console: Console, report: dict, run_dir: Path) -> None:
    """The front, then the chosen run's summary."""
    search = report["search"]
    keys = [o["key"] for o in search["objectives"]]
    table = Table(title=f"edgekit search · {report.get('name')}: the Pareto front (validation split)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    params = sorted({k for p in search["points"] for k in p["params"]})
    for column in ("trial", *[p.rsplit(".", 1)[-1] for p in params], *keys):
        table.add_column(column, justify="right", no_wrap=True)
    shown: dict = {}  # one row per configuration; trials that repeat it are named in its row
    for point in search["points"]:
        if point["trial"] in search["front"] or point["trial"] == search["chosen"]:
            shown.setdefault(tuple(sorted(point["params"].items())), []).append(point)
    for same in shown.values():
        point = next((p for p in same if p["trial"] == search["chosen"]), same[0])
        label = str(point["trial"]) + (" ← chosen" if point["trial"] == search["chosen"] else "")
        others = [str(p["trial"]) for p in same if p is not point]
        label += f" (= {', '.join(others)})" if others else ""
        table.add_row(label, *[format_number(point["params"].get(p)) for p in params],
                      *[format_number((point["values"] or {}).get(k)) for k in keys])
    console.print(table)
    cache = search["cache"]
    console.print(f"{search['completed']} trials completed, {search['failed']} failed, on {search['workers']} "
                  f"worker(s) in {search['wall_s']:.0f} s; {cache['trained_steps']} steps trained, "
                  f"{cache['cached_steps']} taken from the stage cache.", soft_wrap=True)
    if not search["feasible"]:
        console.print("[bold red]no trial met every gate[/] on the validation split: the closest is written (exit 1).")
    print_summary(console, report, run_dir)
