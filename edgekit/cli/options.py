"""The options every command that runs a recipe takes (`compress`, `analyze`), declared once."""

from __future__ import annotations

import functools
from typing import Callable

import click

from edgekit.compute import PRECISIONS

# flags that set a `compute:` key of the recipe, as --set compute.<key>=VALUE would
COMPUTE_FLAGS = ("device", "precision", "workers")


def recipe_run_options(output_help: str, set_example: str, json_help: str, workers_flag: bool = False) -> Callable:
    """RECIPE and --output, --set, --device, --precision, --workers, --quiet, --json, --no-cache, --cache-dir,
    --debug, in that order. --device, --precision and --workers reach the command as `--set compute.<key>=`
    overrides, applied after the recipe's own --set values. Only commands that start training
    workers themselves (`compress`) take --workers (`search` has its own: Ray's trial slots)."""
    options = (
        click.argument("recipe_path", metavar="RECIPE"),
        click.option("--output", "-o", help=output_help),
        click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
                     help=f"Override a recipe value, e.g. --set {set_example} (repeatable)."),
        click.option("--device", metavar="auto|cpu|cuda|cuda:N",
                     help="Train on this device (overrides compute.device; default: the recipe's, else auto)."),
        click.option("--precision", type=click.Choice(PRECISIONS),
                     help="Train in float32 or mixed precision (overrides compute.precision)."),
        *([click.option("--workers", type=click.IntRange(1, 64),
                        help="Train on this many worker processes on this machine, each on its share of "
                             "every batch (overrides compute.workers).")] if workers_flag else []),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines."),
        click.option("--json", "as_json", is_flag=True, help=json_help),
        click.option("--no-cache", is_flag=True, help="Train every step again; do not read or write the stage cache."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Stage cache location (default: $EDGEKIT_CACHE_DIR, else ~/.cache/edgekit)."),
        click.option("--debug", is_flag=True, help="Show tracebacks and the frameworks' own logs."),
    )

    folded_flags = COMPUTE_FLAGS if workers_flag else tuple(key for key in COMPUTE_FLAGS if key != "workers")

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def folded(**kwargs):
            flags = {key: kwargs.pop(key) for key in folded_flags}
            kwargs["overrides"] = (*kwargs["overrides"],
                                   *(f"compute.{key}={value}" for key, value in flags.items() if value is not None))
            return command(**kwargs)

        for option in reversed(options):
            folded = option(folded)
        return folded

    return decorate
