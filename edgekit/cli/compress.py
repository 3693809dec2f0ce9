"""`edgekit compress RECIPE`: run a recipe end to end and print the summary (or JSON)."""

from __future__ import annotations

import json
import sys

import click

from edgekit.cli.console import debug_mode, stdout, terminate_as_interrupt, user_errors
from edgekit.cli.options import recipe_run_options
from edgekit.workers import this_worker


@click.command("compress")
@recipe_run_options("Run directory (default: the recipe's `output:`, else runs/<name>/).",
                    'stages.0.quantize.precision=dynamic',
                    'Print the run summary as JSON on stdout.', workers_flag=True)
def compress_command(recipe_path: str, output: str | None, overrides: tuple[str, ...], quiet: bool, as_json: bool,
                     no_cache: bool, cache_dir: str | None, debug: bool) -> None:
    """Run RECIPE: load or train the teacher, apply the stages, export, measure, gate.

    Trained steps are kept in a stage cache and reused by later runs of the same steps on the
    same data (--no-cache to train again).

    With --workers N (or compute.workers), N local processes train together (DDP for torch), as
    they would under torchrun; worker 0 writes the run directory.

    Exit codes: 0 every gate passed; 1 a gate failed (artifacts and report still written);
    2 bad input (recipe, model, data); 3 a stage or a training worker failed.
    """
    debug_mode(debug)
    terminate_as_interrupt()
    with user_errors(debug):
        from edgekit.progress import Progress
        from edgekit.recipe import load_recipe
        from edgekit.run.cache import StageCache
        from edgekit.run.pipeline import run

        recipe = load_recipe(recipe_path, overrides)
        if recipe.compute.workers > 1 and not this_worker().distributed:
            from edgekit.recipe.support import check_support
            from edgekit.run.launch import launch

            argv = worker_argv(recipe_path, output, overrides, quiet, as_json, no_cache, cache_dir, debug)
            sys.exit(launch(argv, check_support(recipe), recipe.compute.workers))
        cache = StageCache(cache_dir, enabled=not no_cache)
        result = run(recipe, output, Progress(quiet=quiet or as_json), cache=cache)
        if not result.leader:
            sys.exit(0)  # worker 0 reports for the group
    if as_json:
        from edgekit.cli.summary import summary_dict

        click.echo(json.dumps(summary_dict(result.report, result.run_dir), indent=2))
    else:
        from edgekit.cli.summary import print_summary

        print_summary(stdout, result.report, result.run_dir)
    sys.exit(result.exit_code)


def worker_argv(recipe_path: str, output: str | None, overrides: tuple[str, ...], quiet: bool, as_json: bool,
                no_cache: bool, cache_dir: str | None, debug: bool) -> list[str]:
    """The command line each launched worker runs: this one, with --workers already in `overrides`."""
    argv = ["compress", recipe_path, *(["--output", output] if output else [])]
    argv += [arg for override in overrides for arg in ("--set", override)]
    argv += [flag for flag, on in (("--quiet", quiet), ("--json", as_json), ("--no-cache", no_cache),
                                   ("--debug", debug)) if on]
    return argv + (["--cache-dir", cache_dir] if cache_dir else [])
