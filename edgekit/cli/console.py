"""The error handling and output every `edgekit` command shares: one stdout/stderr Console pair,
`user_errors`, debug mode and SIGTERM-as-interrupt.

Errors meant for the user print one paragraph and exit with the code DESIGN.md gives (2 bad input,
3 a stage or runtime failed, 130 interrupted); the traceback is shown only with `--debug`. Command
modules import this module; it imports no command and not the group.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from typing import Iterator

from rich.console import Console
from rich.markup import escape

from edgekit import interrupts
from edgekit.errors import EdgekitError, WorkerLost
from edgekit.workers import launched

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
        if interrupts.signalled():  # e.g. a stage's error made of an import a signal cut short
            _interrupted()
        if isinstance(exc, WorkerLost) and launched():  # the launcher names the worker that stopped
            sys.exit(WorkerLost.LOST_EXIT)
        if debug:
            traceback.print_exc()
        stderr.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # a bug in edgekit or a framework: say so, keep the trace for --debug
        if interrupts.signalled():  # an import that a signal cut short reports its own error (numpy: ImportError)
            _interrupted()
        if debug:
            traceback.print_exc()
        stderr.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
                     "Re-run with --debug for the traceback, and please report it.", soft_wrap=True)
        sys.exit(3)


def debug_mode(debug: bool) -> None:
    """`--debug`: EDGEKIT_DEBUG=1 lets the frameworks' own logs through (see edgekit.quiet)."""
    if debug:
        os.environ["EDGEKIT_DEBUG"] = "1"


def _interrupted() -> None:
    stderr.print("[yellow]interrupted:[/] nothing was written over the previous run directory.")
    sys.exit(130)


def terminate_as_interrupt() -> None:
    """SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so the staging directory is removed; both
    are remembered, so that whatever error they surface as, the run exits 130 (`edgekit.interrupts`)."""
    interrupts.install()
