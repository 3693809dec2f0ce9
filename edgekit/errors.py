"""Errors that end a run with a specific exit code and a one-paragraph message.

Exit codes (DESIGN.md): 0 all gates pass, 1 a gate failed, 2 bad input (recipe, model or data),
3 a stage failed (conversion, runtime). The CLI prints `str(error)` without a traceback unless
`--debug` is given, so every message names the file, the key or line, and what would fix it.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base class: a message meant for the user and the exit code that goes with it."""

    exit_code = 2


class RecipeError(EdgekitError):
    """The recipe is malformed, has unknown keys, bad values or an unsupported combination."""


class InputError(EdgekitError):
    """A model or data file is missing, unreadable or does not fit the recipe."""


class StageError(EdgekitError):
    """A stage (training, conversion, quantization, evaluation on a runtime) failed."""

    exit_code = 3

    def __init__(self, stage: str, message: str):
        super().__init__(f"stage '{stage}' failed: {message}")
        self.stage = stage


class WorkerLost(StageError):
    """A collective of the training group failed because another worker stopped (died, was
    killed, or failed): this worker cannot go on. The worker that stopped is the one to blame; when
    edgekit launched the group (`edgekit.run.launch`), the launcher names it, so this worker exits
    with `LOST_EXIT` and says nothing."""

    LOST_EXIT = 75

    def __init__(self, stage: str, detail: str):
        super().__init__(stage, "another worker of the training group stopped, so this one cannot go on "
                                f"({detail[:300]}). Its own log says why.")
