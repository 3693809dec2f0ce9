"""How numbers read in report.md and report.html: one set of formatters, so both pages show the same figures."""

from __future__ import annotations

from edgekit.report.contents import quality_key
from edgekit.sizes import format_size

__all__ = ["format_number", "format_percent", "format_quality", "format_size"]


def format_number(value, digits: int = 4) -> str:
    """`-` for a missing value; floats to `digits` significant digits (10,000 and above: whole, with commas)."""
    if value is None:
        return "-"
    if isinstance(value, bool):  # a bool is an int to Python, not a number to a reader
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_percent(value) -> str:
    """A fraction as a percentage with two decimals (0.965 -> `96.50%`); `-` for a missing value."""
    return "-" if value is None else f"{100 * value:.2f}%"


def format_quality(report: dict, value) -> str:
    """A quality figure as the report's metric reads: accuracy as a percentage, MAE as a number."""
    return format_percent(value) if quality_key(report) == "accuracy" else format_number(value)
