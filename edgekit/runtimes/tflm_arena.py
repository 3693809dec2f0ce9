"""The tensor arena a .tflite file needs on TFLite Micro: TFLM's own report, and the smallest that works.

A microcontroller runs TFLM in one fixed buffer, the tensor arena, sized at build time; the figure a
user needs is the smallest arena with which the interpreter allocates the model. Two figures:

- `allocation_report(interpreter)`: what TFLM's RecordingMicroAllocator says it used (the
  `Arena allocation total/head/tail` lines that `print_allocations()` writes to fd 2), read with
  `edgekit.quiet.native_stderr_captured`.
- `smallest_arena(path, guess, ceiling)`: the smallest `arena_size` with which the interpreter
  allocates, by search. The report leaves out the temporary memory kernels take while they prepare,
  so on a small model (TFLM's hello_world) the smallest working arena is larger than the report.

The search runs in a child process (this file, run as a script: it imports only the standard
library and tflite_micro): some TFLM kernels dereference a null pointer when the arena is too small
(the LSTM kernel's Prepare segfaults between 2,000 and 4,000 bytes for the mnist_lstm model), which
would take edgekit down with it. The child prints each probe before and after it runs; a child that
dies mid-probe counts that size as too small, and a fresh child carries on from what is known.
Allocation is taken to be monotonic in the arena size (every size above one that works works).
"""

from __future__ import annotations

import re
import sys

_REPORT_LINE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_MAX_CHILDREN = 16
_CHILD_TIMEOUT_S = 300
_FIRST_STEP = 16  # TFLM aligns its arena allocations to 16 bytes


def allocation_report(interpreter) -> dict:
    """{"total", "head", "tail"} bytes from TFLM's RecordingMicroAllocator (empty when it printed none)."""
    from edgekit.quiet import native_stderr_captured

    with native_stderr_captured() as log:
        interpreter.print_allocations()
    return parse_report(log.text)


def parse_report(text: str) -> dict:
    """The `Arena allocation total/head/tail N bytes` lines of `print_allocations()` output, as ints."""
    return {part: int(value) for part, value in _REPORT_LINE.findall(text)}


def smallest_arena(path, guess: int | None, ceiling: int) -> int:
    """The smallest `arena_size` (bytes) with which TFLM allocates the model at `path`.

    `ceiling` is an arena known to work; `guess` (TFLM's reported total) is where the search starts,
    widening from there, then bisecting to the byte.
    """
    import subprocess

    lo, hi = 0, int(ceiling)
    for _ in range(_MAX_CHILDREN):
        if hi - lo <= 1:
            break
        args = [sys.executable, __file__, str(path), str(lo), str(hi), str(guess or 0)]
        done = subprocess.run(args, capture_output=True, text=True, timeout=_CHILD_TIMEOUT_S)
        pending = None
        for line in done.stdout.splitlines():
            what, _, size = line.partition(" ")
            if what == "try":
                pending = int(size)
            elif what == "ok":
                hi, pending = min(hi, int(size)), None
            elif what == "fail":
                lo, pending = max(lo, int(size)), None
        if done.returncode == 0:
            break
        if pending is None:  # died outside a probe: nothing learnt, and a retry would die alike
            raise RuntimeError(f"the arena search stopped (exit status {done.returncode}): {done.stderr[-500:]}")
        lo, guess = max(lo, pending), None  # a probe that crashes is an arena too small
    return hi


# ---- the child process -------------------------------------------------------------------------

def _search(model: bytes, lo: int, hi: int, guess: int) -> None:
    """Narrow (lo fails, hi works) to adjacent sizes, printing every probe; see `smallest_arena`."""
    import os

    from tflite_micro.python.tflite_micro import runtime

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # TFLM logs every failed allocation

    def works(size: int) -> bool:
        print("try", size, flush=True)
        try:
            runtime.Interpreter.from_bytes(model, arena_size=size)
        except RuntimeError:
            print("fail", size, flush=True)
            return False
        print("ok", size, flush=True)
        return True

    step = _FIRST_STEP
    if lo < guess < hi:  # widen from the guess until a working and a failing size bracket the answer
        if works(guess):
            hi = guess
            while hi - step > lo and works(hi - step):
                hi, step = hi - step, step * 2
            lo = max(lo, hi - step)  # the size that failed, or lo when the steps reached it
        else:
            lo = guess
            while lo + step < hi and not works(lo + step):
                lo, step = lo + step, step * 2
            hi = min(hi, lo + step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as fh:
        data = fh.read()
    _search(data, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
