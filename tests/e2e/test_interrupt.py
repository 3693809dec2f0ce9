"""Atomic runs under a real signal: Ctrl-C (SIGINT) or a CI cancel (SIGTERM) in the middle of
`edgekit compress`, and a stage that crashes, leave the previous run directory byte-identical and
no staging directory behind.

The run is `recipes/digits_from_scratch.yaml`, which trains a teacher for 30 epochs (about 10 s),
so there is time to signal it while TensorFlow loads and while the teacher trains.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, make_previous_run, run_edgekit, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

@pytest.fixture(autouse=True)
def empty_stage_cache(tmp_path_factory, monkeypatch) -> Path:
    """A fresh stage cache per test (never the user's ~/.cache/edgekit), so the teacher really trains."""
    root = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CACHE_HOME", str(root))
    return root / "edgekit"


def half_written_cache_entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) if cache.exists() else []








def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith((".run.tmp-", ".run.old-")))


def start_compress(run: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "compress", "recipes/digits_from_scratch.yaml", "--output", str(run)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_staging(proc: subprocess.Popen, parent: Path, timeout: float = 60.0) -> None:
    """Poll every 0.1 s until the run's staging directory `<parent>/.run.tmp-*` exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(parent.glob(".run.tmp-*")):
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"edgekit exited ({proc.returncode}) before staging a run:\n{out}\n{err}")
        time.sleep(0.1)
    proc.kill()
    proc.communicate()
    pytest.fail(f"no staging directory appeared in {parent} within {timeout} s")


def interrupt(run: Path, signum: int, after: float) -> tuple[int, str, str]:
    """Start the run, wait for its staging directory and `after` seconds more, send `signum`."""
    proc = start_compress(run)
    try:
        wait_for_staging(proc, run.parent)
        time.sleep(after)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


# 1 s after staging: TensorFlow is still loading; 5 s after: the teacher is training (its 30
# epochs end about 12 s after the staging directory appears).
MOMENTS = {"while-loading": 1.0, "while-training": 5.0}


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_leaves_the_previous_run_identical(tmp_path, signame, moment, empty_stage_cache):
    run = tmp_path / "run"
    make_previous_run(run)
    before = snapshot(run)

    code, out, err = interrupt(run, getattr(signal, signame), MOMENTS[moment])

    assert code == 130, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "interrupted" in err
    assert "Traceback" not in out + err, err
    assert snapshot(run) == before
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert half_written_cache_entries(empty_stage_cache) == []


def test_an_interrupted_first_run_leaves_no_directory(tmp_path):
    run = tmp_path / "run"

    code, out, err = interrupt(run, signal.SIGINT, MOMENTS["while-training"])

    assert code == 130, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in out + err, err
    assert list(tmp_path.iterdir()) == []


# A Keras teacher that loads and runs but that the TFLite converter cannot convert with builtin
# ops (CategoryEncoding counts with tf.DenseBincount, which TFLite has no builtin for): the run
# fails in its export stage, after staging began.
UNCONVERTIBLE = """
import sys
from edgekit.backends.keras.compat import keras
inputs = keras.Input((8, 8, 1))
x = keras.layers.Flatten()(inputs)
x = keras.layers.Discretization(bin_boundaries=[0.25, 0.5, 0.75])(x)
x = keras.layers.CategoryEncoding(num_tokens=4, output_mode="count")(x)
outputs = keras.layers.Dense(10, activation="softmax")(x)
keras.Model(inputs, outputs).save(sys.argv[1])
"""


def test_a_stage_that_crashes_leaves_the_previous_run_identical(tmp_path):
    teacher = tmp_path / "bincount.keras"
    made = subprocess.run([sys.executable, "-c", UNCONVERTIBLE, str(teacher)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    recipe = tmp_path / "crash.yaml"
    recipe.write_text(
        "version: 1\n"
        "data: {source: digits, scale: 0.0625, calibration_samples: 32, test_samples: 50}\n"
        "teacher: {path: bincount.keras}\n"
        "stages:\n"
        "  - quantize: {method: ptq, precision: int8}\n"
        "export: {formats: [tflite]}\n"
    )
    run = tmp_path / "run"
    make_previous_run(run)
    before = snapshot(run)

    result = run_edgekit("compress", str(recipe), "--output", str(run), "-q", cwd=tmp_path, timeout=300)

    assert result.returncode == 3, f"exit {result.returncode}\n{result.stderr}"
    assert "stage 'export' failed" in result.stderr and "TFLite conversion" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert snapshot(run) == before
    assert leftovers(tmp_path) == []
