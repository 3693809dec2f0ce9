"""Shared test helpers: where the repository and the third-party models are, and a CLI runner.

Imported as `tests.helpers` (the repository root is on pytest's pythonpath)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


def shared_model(relative: str) -> Path:
    """A file under ../shared/models, or a clean skip when that folder is not beside the repo."""
    path = SHARED_MODELS / relative
    if not path.exists():
        pytest.skip(f"third-party model {relative} not found under {SHARED_MODELS} (the shared folder is absent)")
    return path


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_edgekit(*args: str, cwd: Path = ROOT, timeout: int = 600) -> CliResult:
    """Run `edgekit ARGS` in a fresh process, as a user would, and capture everything it prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    # A fresh stage cache per call: tests measure real training unless they share a --cache-dir.
    env["EDGEKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="edgekit-test-cache-")
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
