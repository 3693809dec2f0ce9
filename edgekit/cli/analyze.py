"""`edgekit analyze RECIPE`: per-layer quantization sensitivity of the recipe's quantize plan."""

from __future__ import annotations

import json

import click

from edgekit.cli.console import debug_mode, stdout, terminate_as_interrupt, user_errors
from edgekit.cli.options import recipe_run_options


@click.command("analyze")
@recipe_run_options('Run directory (default: runs/<name>-analysis/).',
                    'stages.0.quantize.precision=int16x8',
                    'Print the analysis section as JSON on stdout.')
def analyze_command(recipe_path: str, output: str | None, overrides: tuple[str, ...], quiet: bool, as_json: bool,
                    no_cache: bool, cache_dir: str | None, debug: bool) -> None:
    """Rank RECIPE's layers by what int8 costs them: drop alone, SNR, outlier ranges, per format.

    The teacher and the stages before quantize run as in compress (the stage cache serves them);
    then every layer is quantized alone and kept float alone, each file run on its runtime on the
    validation split, and the formats' own tools give each layer's SNR. Writes report.json (its
    `analysis` section), report.md and report.html with the ranking and its plot.

    Exit codes: 0 done; 2 bad input (recipe, model, data); 3 a stage failed.
    """
    debug_mode(debug)
    terminate_as_interrupt()
    with user_errors(debug):
        from edgekit.progress import Progress
        from edgekit.recipe import load_recipe
        from edgekit.run.analysis import run_analysis
        from edgekit.run.cache import StageCache

        recipe = load_recipe(recipe_path, overrides)
        cache = StageCache(cache_dir, enabled=not no_cache)
        report, run_dir = run_analysis(recipe, output, Progress(quiet=quiet or as_json), cache=cache)
    if as_json:
        click.echo(json.dumps(report["analysis"], indent=2))
        return
    stdout.print(_table(report))
    stdout.print(f"report: {run_dir / 'report.html'}", soft_wrap=True)


def _table(report: dict):
    """The ranking as a rich table (the same rows as report.md's)."""
    from rich.table import Table

    from edgekit.report.analysis import sensitivity_rows, sensitivity_sentence

    table = Table(title=f"edgekit analyze · {report.get('name', '')}", caption=sensitivity_sentence(report),
                  title_justify="left", caption_justify="left")
    for heading in ("layer", "drop, quantized alone", "drop, float alone", "SNR dB", "range ratio", "channel ratio"):
        table.add_column(heading, justify="left" if heading == "layer" else "right")
    for row in sensitivity_rows(report):
        table.add_row(row["layer"], row["quantized_alone"], row["float_alone"], row["snr"], row["range_ratio"],
                      row["channel_ratio"])
    return table
