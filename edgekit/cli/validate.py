"""`edgekit validate RECIPE [--deep]`: check a recipe without training anything."""

from __future__ import annotations

import click
from rich.markup import escape

from edgekit.cli.console import debug_mode, stdout, user_errors


@click.command("validate")
@click.argument("recipe_path", metavar="RECIPE")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a recipe value.")
@click.option("--deep", is_flag=True,
              help="Also read the data and load the teacher (imports its framework): shapes, labels, preflight.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def validate_command(recipe_path: str, overrides: tuple[str, ...], deep: bool, debug: bool) -> None:
    """Check RECIPE without training anything: keys, values, supported combinations and files
    (instant); with --deep also that the data fit the teacher.

    A recipe with a `search:` block also gets each value of its space checked, as `edgekit search`
    checks them before its first trial."""
    debug_mode(debug)
    with user_errors(debug):
        from edgekit.recipe import load_recipe
        from edgekit.recipe.support import check_support
        from edgekit.run.validation import check_deep, check_files

        recipe = load_recipe(recipe_path, overrides)
        framework = check_support(recipe)
        check_files(recipe)
        if recipe.search is not None:  # every value a trial can take, as `edgekit search` checks it
            from edgekit.search.space import check_space

            check_space(recipe)
        found = check_deep(recipe, framework) if deep else None
    stages = " → ".join(stage.label for stage in recipe.stages) or "no stages"
    stdout.print(f"[green]✓[/] {escape(recipe_path)}: valid recipe '{recipe.name}' ({framework} teacher; {stages}; "
                 f"exports {', '.join(recipe.export.formats)}).", soft_wrap=True)
    if recipe.search is not None:
        stdout.print(f"[green]✓[/] search: {len(recipe.search.space)} paths, every value checked; objectives "
                     f"{', '.join(recipe.search.objectives)}; {recipe.search.trials} trials.", soft_wrap=True)
    if found:
        stdout.print(f"[green]✓[/] data fit the teacher: {found['train']} train, {found['test']} test, "
                     f"{found['calibration']} calibration samples of shape {found['input_shape']}; "
                     f"teacher {found['params']:,} parameters; preflight passed.", soft_wrap=True)
