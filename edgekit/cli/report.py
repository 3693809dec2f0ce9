"""`edgekit report RUN_DIR`: re-render report.md and report.html from a run's report.json."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.markup import escape

from edgekit.cli.console import stdout, user_errors


@click.command("report")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def report_command(run_dir: str, debug: bool) -> None:
    """Re-render RUN_DIR/report.md and report.html from RUN_DIR/report.json."""
    from edgekit.errors import InputError
    from edgekit.report import load_report, write_report

    with user_errors(debug):
        try:
            data = load_report(Path(run_dir))
        except FileNotFoundError:
            raise InputError(f"{run_dir}: no report.json here; give the directory of an `edgekit compress` run.") from None
        except json.JSONDecodeError as exc:
            raise InputError(f"{run_dir}/report.json: not valid JSON ({exc}).") from None
        write_report(Path(run_dir), data)
    stdout.print(f"[green]✓[/] wrote {escape(str(Path(run_dir) / 'report.md'))} and report.html")
