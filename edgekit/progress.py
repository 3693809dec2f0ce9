"""Progress bars and one-line status messages for long work, on stderr.

Bars are drawn only when stderr is a terminal and `--quiet` was not given; otherwise the same calls
do nothing, so CI logs stay clean. Backends receive `Progress.task` and call it as

    with progress.task("train teacher", total=epochs) as advance:
        for epoch in ...: advance(1, loss=0.12)
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console


class Progress:
    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet
        self.bars = not quiet and self.console.is_terminal and sys.stderr.isatty()

    def message(self, text: str) -> None:
        """A status line (e.g. a finished stage), unless quiet."""
        if not self.quiet:
            self.console.print(text)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[..., None]]:
        """A bar for `total` steps; yields `advance(n=1, **fields)`. Bars may nest: they share one
        live display, which ends with the outermost bar."""
        if not self.bars:
            yield lambda n=1, **fields: None
            return
        bar = self._live()
        task_id = bar.add_task(description, total=total, status="")

        def advance(n: int = 1, **fields: float) -> None:
            status = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
            bar.update(task_id, advance=n, status=status)

        try:
            yield advance
        finally:
            bar.remove_task(task_id)
            self._open -= 1
            if self._open == 0:
                bar.stop()
                self._bar = None

    def _live(self):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        if getattr(self, "_bar", None) is None:
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[status]}"),
                console=self.console, transient=True,
            )
            self._bar.start()
            self._open = 0
        self._open += 1
        return self._bar


def to_absolute(advance: Callable[..., None]) -> Callable[[int, int], None]:
    """Adapt `advance(n)` to callers that report `(done, total)` instead of increments."""
    state = {"done": 0}

    def update(done: int, total: int) -> None:
        advance(done - state["done"])
        state["done"] = done

    return update


SILENT = Progress(quiet=True)
