"""Training on several workers end to end: `edgekit compress --workers 2` and the same recipe under
torchrun and with TF_CONFIG (README's "Training on GPUs and clusters"), on torch's
DistributedDataParallel over gloo and on tf.distribute's MultiWorkerMirroredStrategy, on this
machine's loopback. Each worker must really train on its own share of every batch, the
files must be as good as one worker's, and a worker that dies must fail the run without touching
the previous run directory.

The recipe (recipes/digits_torch_qat.yaml) distills, prunes and fine-tunes with QAT: about 30 s
on two workers here. The Keras runs take the same recipe body on the Keras teacher, with a shorter
distillation (MultiWorkerMirroredStrategy's collectives cost ~15 ms a step on this 2-core machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.run.launch import LOG_TAIL_LINES
from tests.helpers import ROOT, artifact_of, make_previous_run, read_report, run_edgekit, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

RECIPE = "recipes/digits_torch_qat.yaml"
TRAINED = ("distill", "prune", "quantize")
KERAS = ("--set", "teacher.path=sample_models/digits_cnn.keras", "--set", "stages.0.distill.epochs=5",
         "--set", "gates.max_accuracy_drop=0.1")


def _trained_steps(report: dict) -> dict:
    return {stage["name"]: stage["compute"] for stage in report["stages"] if stage["name"] in TRAINED}


@pytest.fixture
def one_worker(example_run) -> dict:
    """The recipe on one process (the run tests/e2e/test_recipes.py checks too)."""
    out, result = example_run(Path(RECIPE).name)
    assert result.returncode == 0, result.stderr
    return read_report(out)


def test_two_workers_each_train_their_share_and_the_files_match_one_worker(one_worker, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    result = run_edgekit("compress", RECIPE, "--output", str(out), "-q", "--workers", "2", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    report = read_report(out)
    assert report["compute"]["workers"] == 2
    alone, together = _trained_steps(one_worker), _trained_steps(report)
    for name in TRAINED:
        one, two = alone[name], together[name]
        assert (two["global_batch"], two["worker_batch"]) == (one["global_batch"], one["global_batch"] // 2), name
        assert len(two["steps"]) == 2 and two["steps"][0] == two["steps"][1] == one["steps"][0] > 0, name
        assert min(two["samples"]) > 0.45 * one["samples"][0], name  # each worker saw its own half
        assert abs(sum(two["samples"]) - one["samples"][0]) <= 2 * one["steps"][0], name
    for name in ("model.onnx", "baseline.onnx"):
        assert abs(artifact_of(report, name)["accuracy"] - artifact_of(one_worker, name)["accuracy"]) <= 0.01, name
    assert not list(tmp_path.glob(".run.tmp-*"))

    again = tmp_path / "again"  # worker 0 reuses every step from the cache; worker 1 loads the same entries
    result = run_edgekit("compress", RECIPE, "--output", str(again), "-q", "--workers", "2", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    rerun = read_report(again)
    assert all(stage.get("cached") for stage in rerun["stages"] if stage["name"] in TRAINED)
    assert artifact_of(rerun, "model.onnx")["accuracy"] == artifact_of(report, "model.onnx")["accuracy"]


def test_torchrun_starts_the_same_run_as_the_readme_shows(one_worker, tmp_path):
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc-per-node", "2",
               "-m", "edgekit.cli", "compress", RECIPE, "--output", str(out), "-q", "--no-cache"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("all gates passed") == 1  # only worker 0 reports
    report = read_report(out)
    assert report["compute"]["workers"] == 2
    assert all(len(steps["steps"]) == 2 for steps in _trained_steps(report).values())
    assert abs(artifact_of(report, "model.onnx")["accuracy"] - artifact_of(one_worker, "model.onnx")["accuracy"]) <= 0.01


def _worker_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of the launched worker whose environment makes it worker `rank` (RANK for torch,
    TF_CONFIG's task index for Keras)."""
    children = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            pairs = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        except OSError:
            continue
        environ = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        from edgekit.workers import this_worker

        if this_worker(environ).rank == rank:
            return int(pid)
    return None


@pytest.mark.skipif(not shutil.which("pgrep") or not Path("/proc").exists(), reason="needs pgrep and /proc")
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_a_killed_worker_fails_the_run_with_exit_3_naming_it_and_the_previous_run_stays(framework, tmp_path):
    run = tmp_path / "run"
    make_previous_run(run)
    before = snapshot(run)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    launcher = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "compress", RECIPE, "--output", str(run), "-q",
                                 "--workers", "2", "--no-cache", *(KERAS if framework == "keras" else ())],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob(".run.tmp-*")):  # worker 0 made its staging directory: training starts
            assert launcher.poll() is None and time.monotonic() < deadline, "the run never started training"
            time.sleep(0.1)
        time.sleep(1.0)  # into the distillation (8 s or more on two workers)
        victim = _worker_pid(launcher, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 3, stderr
    assert f"worker 1 (pid {victim}) was killed by SIGKILL" in stderr
    # worker 0's own error about the lost connection is not the story (TensorFlow's C++ runtime may
    # still log the missed heartbeat on its own before worker 0 stops)
    assert "Traceback" not in stderr and "gloo" not in stderr
    # edgekit's one error line, followed by nothing but the dead worker's last output (its log's tail)
    lines = stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1 and lines[errors[0]].startswith("error: worker 1"), stderr
    after = lines[errors[0] + 1:]
    assert len(after) <= LOG_TAIL_LINES and (not after or "Its last output" in lines[errors[0]]), stderr
    assert snapshot(run) == before
    assert not list(tmp_path.glob(".run.*"))


@pytest.fixture(scope="module")
def one_keras_worker(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("keras-one") / "run"
    result = run_edgekit("compress", RECIPE, "--output", str(out), "-q", "--no-cache", *KERAS)
    assert result.returncode == 0, result.stderr
    return read_report(out)


def _check_shares(alone: dict, together: dict) -> None:
    """Each worker trained as many steps as one worker did, on its own half of every batch."""
    for name in TRAINED:
        one, two = _trained_steps(alone)[name], _trained_steps(together)[name]
        assert (two["global_batch"], two["worker_batch"]) == (one["global_batch"], one["global_batch"] // 2), name
        assert len(two["steps"]) == 2 and two["steps"][0] == two["steps"][1] == one["steps"][0] > 0, name
        assert sum(two["samples"]) == one["samples"][0] and min(two["samples"]) > 0.45 * one["samples"][0], name
    model, reference = artifact_of(together, "model.onnx"), artifact_of(alone, "model.onnx")
    assert abs(model["accuracy"] - reference["accuracy"]) <= 0.01


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


@pytest.mark.skipif(not shutil.which("pgrep") or not Path("/proc").exists(), reason="needs pgrep and /proc")
def test_two_keras_workers_train_under_multiworkermirroredstrategy_like_one(one_keras_worker, tmp_path):
    """...and their threads stay bounded: a collective timeout once armed a sleeping thread per
    collective, ten thousand of them in this short run."""
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    launcher = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "compress", RECIPE, "--output", str(out), "-q",
                                 "--no-cache", "--workers", "2", *KERAS],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    most = 0
    try:
        deadline = time.monotonic() + 600
        while launcher.poll() is None and time.monotonic() < deadline:
            children = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
            most = max([most, *(_threads(int(pid)) for pid in children)])
            time.sleep(0.5)
        stdout, stderr = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, stderr
    assert 0 < most < 500, f"a worker ran {most} threads"
    report = read_report(out)
    assert report["framework"] == "keras" and report["compute"]["workers"] == 2
    _check_shares(one_keras_worker, report)


def test_keras_workers_started_with_their_own_tf_config_as_the_readme_shows(one_keras_worker, tmp_path):
    from edgekit.workers import free_ports

    out = tmp_path / "run"
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    command = [sys.executable, "-m", "edgekit.cli", "compress", RECIPE, "--output", str(out), "-q", "--no-cache", *KERAS]
    workers = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**base, "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                      "task": {"type": "worker", "index": index}})})
               for index in range(2)]
    try:
        results = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0], results[0][1][-2000:] + results[1][1][-2000:]
    assert "all gates passed" in results[0][0] and not results[1][0].strip()  # only worker 0 reports
    report = read_report(out)
    assert report["compute"]["workers"] == 2
    _check_shares(one_keras_worker, report)
