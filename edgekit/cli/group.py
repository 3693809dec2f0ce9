"""The `edgekit` click group, which imports a command's module only when that command is used.

This is click's "lazy loading subcommands" pattern: `COMMANDS` maps each command name to the
"module:attr" of its click command, and the module is imported when the command runs or its own
`--help` is shown. `edgekit --help` lists every command from the one-line summaries kept in the
same table, so it imports no command module at all. Command modules share their console and error
handling through `edgekit.cli.console`; none of them imports this module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from gettext import gettext

import click

from edgekit import __version__


@dataclass(frozen=True)
class LazyCommand:
    """Where a command lives ("edgekit.cli.gate:gate_command") and the first paragraph of its
    docstring, from which click derives the line `edgekit --help` shows (tests keep the two equal)."""

    target: str
    summary: str


COMMANDS: dict[str, LazyCommand] = {
    "analyze": LazyCommand("edgekit.cli.analyze:analyze_command",
                           "Rank RECIPE's layers by what int8 costs them: drop alone, SNR, outlier ranges, per "
                           "format."),
    "bench": LazyCommand("edgekit.cli.bench:bench_command",
                         "Time MODEL (.tflite / .onnx) on its runtime: latency p50/p90/p99, threads, memory, size."),
    "compress": LazyCommand("edgekit.cli.compress:compress_command",
                            "Run RECIPE: load or train the teacher, apply the stages, export, measure, gate."),
    "gate": LazyCommand("edgekit.cli.gate:gate_command",
                        "Check MODEL (.tflite/.onnx: size, latency) or REPORT (report.json or run directory: "
                        "every gate)."),
    "init": LazyCommand("edgekit.cli.init:init_command",
                        "Write a commented starter recipe that runs as written (digits, a zoo teacher, int8)."),
    "inspect": LazyCommand("edgekit.cli.inspect:inspect_command",
                           "Describe MODEL (.tflite, .onnx or .pte): inputs/outputs, quantization, float ops, op "
                           "histogram, sizes."),
    "report": LazyCommand("edgekit.cli.report:report_command",
                          "Re-render RUN_DIR/report.md and report.html from RUN_DIR/report.json."),
    "search": LazyCommand("edgekit.cli.search:search_command",
                          "Search RECIPE's `search:` space for the smallest model that meets every gate."),
    "validate": LazyCommand("edgekit.cli.validate:validate_command",
                            "Check RECIPE without training anything: keys, values, supported combinations and "
                            "files (instant); with --deep also that the data fit the teacher."),
}


class LazyGroup(click.Group):
    """A click.Group whose `lazy_subcommands` ({name: LazyCommand}) are imported on first use."""

    def __init__(self, *args, lazy_subcommands: dict[str, LazyCommand] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self.load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, cmd_name: str) -> click.Command:
        """Import the module of the lazy command `cmd_name` and return its click command."""
        module_name, _, attr = self.lazy_subcommands[cmd_name].target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_subcommands[cmd_name].target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click.Group.format_commands, with lazy commands described by their summaries (no import)."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            if name in self.lazy_subcommands:
                commands.append((name, click.Command(name, help=self.lazy_subcommands[name].summary)))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    commands.append((name, command))
        if not commands:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in commands)
        with formatter.section(gettext("Commands")):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])


@click.group(cls=LazyGroup, lazy_subcommands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
def main() -> None:
    """Compress Keras and PyTorch classifiers into verified int8 .tflite and .onnx files.

    Start with `edgekit compress recipes/quickstart.yaml`.
    """
