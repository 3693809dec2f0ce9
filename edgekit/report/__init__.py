"""report.json and what people read of it: report.md and report.html, pure functions of the report."""

from edgekit.report.markdown import SCHEMA, load_report, render_markdown, write_report

__all__ = ["SCHEMA", "load_report", "render_markdown", "write_report"]
