"""The options every command that runs a recipe takes (`compress`, `analyze`), declared once."""

from __future__ import annotations

from typing import Callable

import click


def recipe_run_options(output_help: str, set_example: str, json_help: str) -> Callable:
    """RECIPE and --output, --set, --quiet, --json, --no-cache, --cache-dir, --debug, in that order."""
    options = (
        click.argument("recipe_path", metavar="RECIPE"),
        click.option("--output", "-o", help=output_help),
        click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                     help=f"Override a recipe value, e.g. --set {set_example} (repeatable)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines."),
        click.option("--json", "as_json", is_flag=True, help=json_help),
        click.option("--no-cache", is_flag=True, help="Train every step again; do not read or write the stage cache."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Stage cache location (default: $EDGEKIT_CACHE_DIR, else ~/.cache/edgekit)."),
        click.option("--debug", is_flag=True, help="Show tracebacks and the frameworks' own logs."),
    )

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate
