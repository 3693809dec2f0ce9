"""`edgekit init [--framework keras|torch] [-o recipe.yaml] [--force]`: write a starter recipe."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from edgekit.cli.console import stdout, user_errors


@click.command("init")
@click.option("--framework", type=click.Choice(["keras", "torch"]), default="keras", show_default=True,
              help="Framework of the teacher the recipe trains (or loads, once you set teacher.path).")
@click.option("--output", "-o", default="recipe.yaml", show_default=True, help="Where to write the recipe.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init_command(framework: str, output: str, force: bool) -> None:
    """Write a commented starter recipe that runs as written (digits, a zoo teacher, int8)."""
    from edgekit.errors import InputError
    from edgekit.recipe.starter import starter_recipe

    path = Path(output)
    with user_errors(False):
        if path.exists() and not force:
            raise InputError(f"{path}: the file exists; choose another --output or pass --force to overwrite it.")
        try:
            path.write_text(starter_recipe(framework, str(path)), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot write the recipe ({exc.strerror}).") from None
    stdout.print(f"[green]✓[/] wrote {escape(str(path))}: run it with `edgekit compress {escape(str(path))}`")
