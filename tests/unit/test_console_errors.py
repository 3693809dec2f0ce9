"""How the CLI's one error handler (`edgekit.cli.console.user_errors`) ends a command: an interrupt
exits 130 even when the signal surfaced as another error (numpy's import, cut short by SIGTERM,
raises `ImportError: initialization failed`); without a signal the same error is an internal error."""

from __future__ import annotations

import pytest

from edgekit import interrupts
from edgekit.cli import console
from edgekit.errors import StageError


def _exit_code(error: BaseException) -> int:
    with pytest.raises(SystemExit) as ended:
        with console.user_errors(debug=False):
            raise error
    return ended.value.code


def test_an_error_a_signal_caused_ends_as_an_interrupt(monkeypatch):
    assert _exit_code(ImportError("initialization failed")) == 3
    assert _exit_code(StageError("export", "boom")) == 3
    monkeypatch.setattr(interrupts, "_RECEIVED", [15])
    assert _exit_code(ImportError("initialization failed")) == 130
    assert _exit_code(StageError("export", "ImportError: initialization failed")) == 130
    assert _exit_code(KeyboardInterrupt()) == 130
