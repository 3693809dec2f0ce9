"""`edgekit compress RECIPE`: run a recipe end to end and print the summary (or JSON)."""

from __future__ import annotations

import json
import sys

import click

from edgekit.cli.console import debug_mode, stdout, terminate_as_interrupt, user_errors
from edgekit.cli.options import recipe_run_options


@click.command("compress")
@recipe_run_options("Run directory (default: the recipe's `output:`, else runs/<name>/).",
                    'stages.0.quantize.precision=dynamic',
                    'Print the run summary as JSON on stdout.')
def compress_command(recipe_path: str, output: str | None, overrides: tuple[str, ...], quiet: bool, as_json: bool,
                     no_cache: bool, cache_dir: str | None, debug: bool) -> None:
    """Run RECIPE: load or train the teacher, apply the stages, export, measure, gate.

    Trained steps are kept in a stage cache and reused by later runs of the same steps on the
    same data (--no-cache to train again).

    Exit codes: 0 every gate passed; 1 a gate failed (artifacts and report still written);
    2 bad input (recipe, model, data); 3 a stage failed.
    """
    debug_mode(debug)
    terminate_as_interrupt()
    with user_errors(debug):
        from edgekit.progress import Progress
        from edgekit.recipe import load_recipe
        from edgekit.run.cache import StageCache
        from edgekit.run.pipeline import run

        recipe = load_recipe(recipe_path, overrides)
        cache = StageCache(cache_dir, enabled=not no_cache)
        result = run(recipe, output, Progress(quiet=quiet or as_json), cache=cache)
    if as_json:
        from edgekit.cli.summary import summary_dict

        click.echo(json.dumps(summary_dict(result.report, result.run_dir), indent=2))
    else:
        from edgekit.cli.summary import print_summary

        print_summary(stdout, result.report, result.run_dir)
    sys.exit(result.exit_code)
