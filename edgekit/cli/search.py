"""`edgekit search RECIPE`: the smallest model that meets the gates, searched over the recipe's `search:` space."""

from __future__ import annotations

import json
import sys

import click

from edgekit.cli.console import debug_mode, stdout, terminate_as_interrupt, user_errors
from edgekit.cli.options import recipe_run_options


@click.command("search")
@recipe_run_options("Run directory of the chosen trial (default: the recipe's `output:`, else runs/<name>/).",
                    "search.trials=32", "Print the run summary and the search's points as JSON on stdout.")
@click.option("--trials", type=click.IntRange(min=1), help="Budget: trials to finish (default: search.trials).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Trials run at once on a local Ray instance (default 1); with --ray-address, at most this many "
                   "(default: the cluster's CPUs).")
@click.option("--ray-address", metavar="HOST:PORT", help="Run the trials on this existing Ray cluster.")
@click.option("--resume", is_flag=True, help="Continue the interrupted search of this recipe and output directory.")
def search_command(recipe_path: str, output: str | None, overrides: tuple[str, ...], quiet: bool, as_json: bool,
                   no_cache: bool, cache_dir: str | None, debug: bool, trials: int | None, workers: int | None,
                   ray_address: str | None, resume: bool) -> None:
    """Search RECIPE's `search:` space for the smallest model that meets every gate.

    Optuna samples the trials (NSGA-II or TPE, the gates as constraints, a journal in the output's
    state directory so that --resume continues an interrupted search); Ray runs them, each a normal
    run measured on its runtimes, compared on the validation split. Trials share trained steps
    through the stage cache. The chosen trial (the feasible non-dominated one that is best by
    search.select, default the first objective) is written as runs/<name>/, with search/trials.csv,
    search/pareto.json and the Pareto front in report.html.

    Exit codes: 0 the chosen model meets every gate; 1 no trial met them all (the closest is
    written); 2 bad input (recipe, search block, model, data); 3 every trial failed.
    """
    debug_mode(debug)
    terminate_as_interrupt()
    with user_errors(debug):
        from edgekit.errors import RecipeError
        from edgekit.progress import Progress
        from edgekit.recipe import load_recipe
        from edgekit.run.cache import StageCache
        from edgekit.search.driver import SearchOptions, run_search

        recipe = load_recipe(recipe_path, overrides)
        if recipe.search is None:
            raise RecipeError(f"{recipe_path}: the recipe has no search: block; add one (space, objectives, trials) "
                              "as in recipes/digits_search.yaml, or run it with edgekit compress.")
        options = SearchOptions(recipe_path, overrides, output, trials, workers if workers or ray_address else 1,
                                ray_address, resume, debug)
        try:
            result = run_search(recipe, options, Progress(quiet=quiet or as_json),
                                cache=StageCache(cache_dir, enabled=not no_cache))
        except KeyboardInterrupt:
            from edgekit.cli.console import stderr
            from edgekit.run.pipeline import output_dir
            from edgekit.search.driver import state_directory

            state = state_directory(output_dir(recipe, output).absolute())
            if (state / "journal.log").exists():
                stderr.print(f"The finished trials are kept in {state}: add --resume to continue the search.",
                             soft_wrap=True, markup=False)
            raise
    from edgekit.cli.summary import print_search_summary, search_summary_dict

    if as_json:
        click.echo(json.dumps(search_summary_dict(result.report, result.run_dir), indent=2))
    else:
        print_search_summary(stdout, result.report, result.run_dir)
    sys.exit(result.exit_code)
