"""The `edgekit` command line.

Heavy imports (TensorFlow, the runtimes) happen inside the commands that need them, so
`edgekit --help` and `edgekit validate` answer in a fraction of a second. Errors meant for the user
print one paragraph and exit with the code DESIGN.md gives (2 bad input, 3 a stage failed); the
traceback is shown only with `--debug`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from typing import Iterator

import click
from rich.console import Console
from rich.markup import escape

from edgekit import __version__
from edgekit.errors import EdgekitError

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)
if not stdout.is_terminal:  # logs and pipes: wide enough that the summary table never truncates
    stdout = Console(highlight=False, width=120)


@contextlib.contextmanager
def user_errors(debug: bool) -> Iterator[None]:
    """Turn EdgekitError into its exit code and a message; Ctrl-C into exit 130."""
    try:
        yield
    except EdgekitError as exc:
        if debug:
            traceback.print_exc()
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted:[/] nothing was written over the previous run directory.")
        sys.exit(130)
    except Exception as exc:  # a bug in edgekit or a framework: say so, keep the trace for --debug
        if debug:
            traceback.print_exc()
        stderr.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
                     "Re-run with --debug for the traceback, and please report it.", soft_wrap=True)
        sys.exit(3)


def _debug_mode(debug: bool) -> None:
    if debug:
        os.environ["EDGEKIT_DEBUG"] = "1"


def _terminate_as_interrupt() -> None:
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so the staging directory is removed."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def main() -> None:
    """Compress Keras and PyTorch classifiers into verified int8 .tflite and .onnx files.

    Start with `edgekit compress recipes/quickstart.yaml`.
    """


@main.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.option("--output", "-o", help="Run directory (default: the recipe's `output:`, else runs/<name>/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a recipe value, e.g. --set stages.0.quantize.precision=dynamic (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option("--no-cache", is_flag=True, help="Train every step again; do not read or write the stage cache.")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Stage cache location (default: $EDGEKIT_CACHE_DIR, else ~/.cache/edgekit).")
@click.option("--debug", is_flag=True, help="Show tracebacks and the frameworks' own logs.")
def compress(recipe_path: str, output: str | None, overrides: tuple[str, ...], quiet: bool, as_json: bool,
             no_cache: bool, cache_dir: str | None, debug: bool) -> None:
    """Run RECIPE: load or train the teacher, apply the stages, export, measure, gate.

    Trained steps are kept in a stage cache and reused by later runs of the same steps on the
    same data (--no-cache to train again).

    Exit codes: 0 every gate passed; 1 a gate failed (artifacts and report still written);
    2 bad input (recipe, model, data); 3 a stage failed.
    """
    _debug_mode(debug)
    _terminate_as_interrupt()
    with user_errors(debug):
        from edgekit.run.cache import StageCache
        from edgekit.run.pipeline import run
        from edgekit.progress import Progress
        from edgekit.recipe import load_recipe

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


@main.command()
@click.argument("recipe_path", metavar="RECIPE")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a recipe value.")
@click.option("--deep", is_flag=True,
              help="Also read the data and load the teacher (imports its framework): shapes, labels, preflight.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def validate(recipe_path: str, overrides: tuple[str, ...], deep: bool, debug: bool) -> None:
    """Check RECIPE without training anything: keys, values, supported combinations and files
    (instant); with --deep also that the data fit the teacher."""
    _debug_mode(debug)
    with user_errors(debug):
        from edgekit.recipe import load_recipe
        from edgekit.recipe.support import check_support
        from edgekit.run.validation import check_deep, check_files

        recipe = load_recipe(recipe_path, overrides)
        framework = check_support(recipe)
        check_files(recipe)
        found = check_deep(recipe, framework) if deep else None
    stages = " → ".join(stage.label for stage in recipe.stages) or "no stages"
    stdout.print(f"[green]✓[/] {escape(recipe_path)}: valid recipe '{recipe.name}' ({framework} teacher; {stages}; "
                 f"exports {', '.join(recipe.export.formats)}).", soft_wrap=True)
    if found:
        stdout.print(f"[green]✓[/] data fit the teacher: {found['train']} train, {found['test']} test, "
                     f"{found['calibration']} calibration samples of shape {found['input_shape']}; "
                     f"teacher {found['params']:,} parameters; preflight passed.", soft_wrap=True)


@main.command()
@click.option("--framework", type=click.Choice(["keras", "torch"]), default="keras", show_default=True,
              help="Framework of the teacher the recipe trains (or loads, once you set teacher.path).")
@click.option("--output", "-o", default="recipe.yaml", show_default=True, help="Where to write the recipe.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(framework: str, output: str, force: bool) -> None:
    """Write a commented starter recipe that runs as written (digits, a zoo teacher, int8)."""
    from pathlib import Path

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


@main.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def report(run_dir: str, debug: bool) -> None:
    """Re-render RUN_DIR/report.md and report.html from RUN_DIR/report.json."""
    from pathlib import Path

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


def _register_tool_commands() -> None:
    """Commands defined in their own modules (each imports its heavy dependencies when it runs)."""
    from edgekit.cli.inspect import inspect_command
    from edgekit.cli.tools import bench_command, gate_command

    main.add_command(inspect_command)
    main.add_command(bench_command)
    main.add_command(gate_command)


_register_tool_commands()
