"""What a user watching a search sees: a live table on a terminal, a line per trial in a log.

The table (rich.live) shows trials done of the budget, running, failed, how many meet the gates,
the best feasible trial so far by the `select` objective, and the mean time per trial. Off a
terminal each finished trial is one line; `--quiet` and `--json` show nothing.
"""

from __future__ import annotations

import time
from typing import Optional

from rich.markup import escape
from rich.table import Table

from edgekit.progress import Progress
from edgekit.report.formatting import format_number
from edgekit.recipe.search import Objective
from edgekit.search.trial import TrialResult


class SearchWatch:
    def __init__(self, progress: Progress, budget: int, done: int, objectives: list[Objective], select: Objective):
        self.progress, self.budget, self.objectives, self.select = progress, budget, objectives, select
        self.done, self.failed, self.feasible, self.running = done, 0, 0, 0
        self.times: list[float] = []
        self.best: Optional[TrialResult] = None
        self.start = time.perf_counter()
        self._live = None

    def __enter__(self) -> "SearchWatch":
        if self.progress.bars:
            from rich.live import Live

            self._live = Live(self._table(), console=self.progress.console, refresh_per_second=2, transient=False)
            self._live.start()
        elif self.done:
            self.progress.message(f"resuming: {self.done} of {self.budget} trials already finished")
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.stop()

    def started(self, count: int) -> None:
        self.running += count
        self._refresh()

    def finished(self, result: TrialResult) -> None:
        self.running -= 1
        self.done += 1
        self.times.append(result.wall_s)
        if result.state != "complete":
            self.failed += 1
        elif result.feasible:
            self.feasible += 1
            if self.best is None or self._better(result, self.best):
                self.best = result
        if self._live is None:
            self.progress.message(f"trial {result.number} ({self.done}/{self.budget}): {escape(self._describe(result))}")
        self._refresh()

    def _better(self, a: TrialResult, b: TrialResult) -> bool:
        key = self.select.key
        return a.values[key] < b.values[key] if self.select.direction == "minimize" else a.values[key] > b.values[key]

    def _describe(self, result: TrialResult) -> str:
        params = ", ".join(f"{path.rsplit('.', 1)[-1]}={format_number(v)}" for path, v in result.params.items())
        if result.state != "complete":
            return f"{params} → failed (exit {result.exit_code}): {(result.error or '').splitlines()[0][:160]}"
        values = ", ".join(f"{o.name} {format_number(result.values[o.key])}" for o in self.objectives)
        verdict = "meets the gates" if result.feasible else "misses a gate"
        cached = f", {len(result.cached)} step(s) from the cache" if result.cached else ""
        return f"{params} → {values}, {verdict} ({result.wall_s:.1f} s{cached})"

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._table())

    def _table(self) -> Table:
        table = Table(title="edgekit search", title_justify="left")
        for column in ("done", "running", "failed", "meet gates", f"best by {self.select.key}", "s / trial", "elapsed"):
            table.add_column(column, justify="right")
        mean = f"{sum(self.times) / len(self.times):.1f}" if self.times else "-"
        best = "-" if self.best is None else f"trial {self.best.number}: {format_number(self.best.values[self.select.key])}"
        table.add_row(f"{self.done}/{self.budget}", str(self.running), str(self.failed), str(self.feasible), best,
                      mean, f"{time.perf_counter() - self.start:.0f} s")
        return table
