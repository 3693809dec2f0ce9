"""Ctrl-C (SIGINT) and a CI cancel (SIGTERM) end a run as an interrupt, whatever code they land in.

`install()` makes both signals raise KeyboardInterrupt and remembers them. Code outside edgekit does
not always let that exception through: a native module's initialization that a signal cuts short
raises its own error (numpy: ImportError), and a bare `except:` in a framework's import can swallow
it, so that the run goes on to the end as if nothing happened (seen: SIGINT 5 s into a run, while
TensorFlow loaded, and the run finished with exit 0). `signalled()` tells the CLI to report such an
error as an interrupt, and `raise_if_signalled()` is called before a finished run replaces its
output directory, so that a signal the run did not stop for still keeps the previous run.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from typing import NoReturn

#: the signals received since `install()`
_RECEIVED: list[int] = []


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt (so the staging directory is removed) and are remembered."""
    def handler(signum, frame):
        _RECEIVED.append(signum)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def signalled() -> bool:
    """Whether SIGINT or SIGTERM arrived since `install()`."""
    return bool(_RECEIVED)


def raise_if_signalled() -> None:
    """KeyboardInterrupt when a signal arrived, even one that something else swallowed."""
    if _RECEIVED:
        raise KeyboardInterrupt


def exit_process(code: int) -> NoReturn:
    """End the process with `code` after a signal: the atexit handlers run and the output is
    flushed, as in a normal exit, but the interpreter's own shutdown is skipped.

    That shutdown can turn a handled interrupt into a death by SIGINT: under `python -m`, CPython
    exits by re-raising SIGINT when it counts a KeyboardInterrupt as unhandled, and a framework's
    thread or finalizer can still be running then. Seen once in CI: the run printed its
    "interrupted" line and `subprocess` read exit -2 instead of 130.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(code)
