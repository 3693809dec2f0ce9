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
