"""`edgekit compress --workers N`: start N local training workers, as torchrun would, and watch them.

Each worker is `python -m edgekit.cli compress ...` again, with the environment its framework's own
launcher gives a worker (`edgekit.workers.local_environments`: torchrun's RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT, or a TF_CONFIG), so it joins the group exactly as it would under
torchrun on a cluster. Worker 0 prints to this terminal and writes the run directory; the others
log to files that are kept, and named, when something goes wrong.

A worker that dies (a signal, an out-of-memory kill, a crash) leaves the others waiting in a
collective: the launcher stops them, and the run fails with exit 3 naming that worker. Worker 0
then removes its staging directory (SIGTERM unwinds like Ctrl-C), so the previous run directory
is never replaced.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edgekit.errors import EdgekitError, WorkerLost
from edgekit.workers import LAUNCH_VARIABLES, local_environments

POLL_S = 0.1
STOP_GRACE_S = 20.0  # how long a stopped worker may take to clean up before it is killed
LOG_TAIL_LINES = 12
LOST_GRACE_S = 5.0  # how long to look for the worker that went away once another reports losing it


@dataclass
class Launched:
    """One started worker: its rank, process and log file (None for worker 0, which prints here)."""

    rank: int
    process: subprocess.Popen
    log: Optional[Path]

    def describe(self) -> str:
        return f"worker {self.rank} (pid {self.process.pid})"


class WorkerFailed(EdgekitError):
    """A worker died or failed: the run fails with exit 3 (or the worker's own exit 2 for bad input)."""

    def __init__(self, message: str, exit_code: int = 3):
        super().__init__(message)
        self.exit_code = exit_code


def launch(argv: list[str], framework: str, count: int) -> int:
    """Run `edgekit <argv>` as `count` workers of a `framework` group on this machine; return
    worker 0's exit code when all finished, or raise WorkerFailed naming the worker that did not."""
    logs = Path(tempfile.mkdtemp(prefix="edgekit-workers-"))
    inherited = {key: value for key, value in os.environ.items() if key not in LAUNCH_VARIABLES}
    workers: list[Launched] = []
    try:
        for rank, environment in enumerate(local_environments(framework, count)):
            workers.append(_start(argv, rank, {**inherited, **environment}, logs))
        code = _watch(workers)
    except BaseException:  # Ctrl-C or SIGTERM here too: the workers stop, then so does this run
        _stop(workers, signal.SIGTERM)
        raise
    shutil.rmtree(logs, ignore_errors=True)
    return code


def _start(argv: list[str], rank: int, environment: dict, logs: Path) -> Launched:
    command = [sys.executable, "-m", "edgekit.cli", *argv]
    if rank == 0:
        return Launched(rank, subprocess.Popen(command, env=environment), None)
    log = logs / f"worker-{rank}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, env=environment, stdout=sink, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    return Launched(rank, process, log)


def _watch(workers: list[Launched]) -> int:
    """Wait for every worker and return worker 0's exit code; raise WorkerFailed naming the first
    worker that died or failed (the others are stopped). A worker that only lost its peers exits
    with WorkerLost.LOST_EXIT: the one that went away is looked for a moment before giving up."""
    lost_since = None
    while True:
        codes = [worker.process.poll() for worker in workers]
        culprit = _culprit(workers, codes)
        if culprit is not None:
            _stop([w for w in workers if w is not culprit], signal.SIGTERM)
            raise WorkerFailed(*_failure_message(culprit, codes[culprit.rank], workers))
        lost = [w for w, code in zip(workers, codes) if code == WorkerLost.LOST_EXIT]
        lost_since = lost_since or (time.monotonic() if lost else None)
        if lost and (all(code is not None for code in codes) or time.monotonic() - lost_since > LOST_GRACE_S):
            _stop(workers, signal.SIGTERM)
            raise WorkerFailed(f"{lost[0].describe()} lost contact with the other workers while the run trained on "
                               f"{len(workers)} workers; they were stopped and the previous run directory is unchanged.")
        if all(code is not None for code in codes):
            return codes[0]
        if codes[0] not in (None, 0, WorkerLost.LOST_EXIT):
            _stop(workers[1:], signal.SIGTERM)  # worker 0 failed and said why; the others wait for it in vain
            return codes[0]
        time.sleep(POLL_S)


def _culprit(workers: list[Launched], codes: list[Optional[int]]) -> Optional[Launched]:
    """The worker to blame: one killed by a signal first (its death makes the others fail in turn),
    else a worker other than 0 that exited with an error of its own (worker 0 reports its own)."""
    signalled = [w for w, code in zip(workers, codes) if code is not None and code < 0]
    if signalled:
        return signalled[0]
    own_errors = (None, 0, WorkerLost.LOST_EXIT)
    return next((w for w, code in zip(workers, codes) if w.rank > 0 and code not in own_errors), None)


def _failure_message(failed: Launched, code: int, workers: list[Launched]) -> tuple[str, int]:
    if code < 0:
        how = f"was killed by {signal.Signals(-code).name}"
    else:
        how = f"exited with code {code}"
    message = (f"{failed.describe()} {how} while the run trained on {len(workers)} workers; the other workers were "
               "stopped and the previous run directory is unchanged.")
    tail = _tail(failed.log)
    if tail:
        message += f" Its last output ({failed.log}):\n{tail}"
    return message, 2 if code == 2 else 3


def _tail(log: Optional[Path]) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _stop(workers: list[Launched], how: signal.Signals) -> None:
    """Send `how` to the running workers, wait for them to clean up, kill those that do not."""
    running = [w for w in workers if w.process.poll() is None]
    for worker in running:
        worker.process.send_signal(how)
    deadline = time.monotonic() + STOP_GRACE_S
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
