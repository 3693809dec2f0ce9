"""edgekit.cli.run and edgekit.interrupts.exit_process: after a signal the process exits with the code
the command chose (130), not with a death by SIGINT that the interpreter's shutdown can turn it into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A command that handles Ctrl-C (exit 130 via SystemExit) but is hit by a second KeyboardInterrupt
# while it unwinds: plain Python dies by SIGINT (subprocess reads -2) with a traceback.
COMMAND = """
import os, signal, sys
from edgekit import interrupts
import edgekit.cli as cli

def command():
    interrupts.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        signal.pause()
    except KeyboardInterrupt:
        try:
            sys.exit(130)
        finally:
            raise KeyboardInterrupt

cli.main = command
{call}
"""


def _run(call: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", COMMAND.format(call=call)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def test_without_the_entry_point_the_process_dies_by_sigint():
    # the baseline the entry point exists for: this is what a user's shell and CI would otherwise see
    proc = _run("cli.main()")

    assert proc.returncode == -2, proc.stderr


def test_the_entry_point_exits_130_after_a_signal():
    proc = _run("cli.run()")

    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr


def test_exit_process_runs_atexit_handlers_and_flushes_output(tmp_path):
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, sys\n"
            "from edgekit import interrupts\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
            "sys.stdout.write('buffered, not yet flushed')\n"
            "interrupts.exit_process(130)\n")

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)

    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == "buffered, not yet flushed"
    assert marker.exists()


def test_the_console_script_and_python_m_use_the_entry_point():
    pyproject = (REPO / "pyproject.toml").read_text()

    assert 'edgekit = "edgekit.cli:run"' in pyproject
    assert "run()" in (REPO / "edgekit" / "cli" / "__main__.py").read_text()
