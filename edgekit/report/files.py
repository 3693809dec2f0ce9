"""A run's report files: report.json (the record, SCHEMA) and the report.md / report.html rendered from it."""

from __future__ import annotations

import json
from pathlib import Path

from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown

SCHEMA = "edgekit.report/1"


def write_report(run_dir: Path, report: dict) -> None:
    """Write report.json, report.md and report.html (self-contained, with plots) into `run_dir`."""
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
