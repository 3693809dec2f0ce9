"""The `edgekit` command line: `edgekit.cli:run` is the console script, `python -m edgekit.cli` runs it too.

`main` is a lazy click group (`edgekit.cli.group`): each command lives in its own module here and is
imported only when used; `edgekit.cli.console` holds the output and error handling they share.
"""

from edgekit import interrupts
from edgekit.cli.group import main

__all__ = ["main", "run"]


def run() -> None:
    """The process entry point: `main`, and after a signal (Ctrl-C, SIGTERM) an exit with exactly the
    code the command chose (130), whatever the interpreter's shutdown would make of it."""
    try:
        main()
    except SystemExit as exc:
        if interrupts.signalled():
            interrupts.exit_process(exc.code if isinstance(exc.code, int) else 130)
        raise
    except KeyboardInterrupt:
        if interrupts.signalled():  # one raised after the command had already handled the first
            interrupts.exit_process(130)
        raise
