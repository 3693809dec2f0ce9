"""report.json and what people read of it: report.md and report.html, pure functions of the report.

Submodules: files (SCHEMA, reading and writing a run's report files), markdown and html (the two
renderers), plots (matplotlib figures as inline SVG), formatting and contents (number formats and
report look-ups shared by both pages), analysis and search (the text of the per-layer quantization and
`edgekit search` sections). Importing this package loads neither Jinja2 nor matplotlib.
"""

from edgekit.report.files import SCHEMA, load_report, write_report
from edgekit.report.html import render_html
from edgekit.report.markdown import render_markdown

__all__ = ["SCHEMA", "load_report", "render_html", "render_markdown", "write_report"]
