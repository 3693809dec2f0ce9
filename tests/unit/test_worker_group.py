"""Training on several workers, without a framework: which worker a process is (torchrun's and
TF_CONFIG's environment), the environments the local launcher gives its workers, how a global batch
is split, what the report and the stage cache record, what validation refuses, and how the launcher
reports a worker that dies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from edgekit.cli.compress import worker_argv
from edgekit.compute import Compute, cache_key, count, counting, split_batch
from edgekit.errors import InputError, RecipeError, WorkerLost
from edgekit.recipe import parse_recipe
from edgekit.recipe import support
from edgekit.recipe.support import check_one_process, check_support
from edgekit.run import launch
from edgekit.run.context import training_figures
from edgekit.run.reuse import stage_keys, teacher_key
from edgekit.workers import LAUNCHED, SOLO, local_environments, this_worker
from tests.helpers import support_refusal


def _recipe(framework="torch", **extra):
    return parse_recipe({"version": 1, "teacher": {"build": {"arch": "cnn_tiny"}, "framework": framework},
                         "stages": [{"prune": {"sparsity": 0.5}}], **extra})


def test_torchrun_variables_name_the_worker_and_its_gpu():
    worker = this_worker({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (worker.rank, worker.count, worker.local, worker.source) == (1, 4, 1, "torchrun")
    assert not worker.leader and worker.distributed
    assert this_worker({}) == SOLO and SOLO.leader and not SOLO.distributed


def test_tf_config_counts_the_chief_as_worker_zero():
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 1}}
    worker = this_worker({"TF_CONFIG": json.dumps(config)})
    assert (worker.rank, worker.count, worker.source) == (2, 3, "TF_CONFIG")
    chief = this_worker({"TF_CONFIG": json.dumps({**config, "task": {"type": "chief", "index": 0}})})
    assert chief.leader


@pytest.mark.parametrize("environ, says", [
    ({"RANK": "x", "WORLD_SIZE": "2"}, "whole numbers"),
    ({"RANK": "2", "WORLD_SIZE": "2"}, "0..WORLD_SIZE-1"),
    ({"TF_CONFIG": "{not json"}, "expected JSON"),
    ({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}})}, "not in the cluster"),
])
def test_a_malformed_worker_environment_is_bad_input(environ, says):
    with pytest.raises(InputError, match=says):
        this_worker(environ)


def test_local_workers_get_torchruns_environment_and_a_share_of_the_cores():
    environments = local_environments("torch", 2, environ={})
    assert [this_worker(env).rank for env in environments] == [0, 1]
    assert {env["MASTER_PORT"] for env in environments} == {environments[0]["MASTER_PORT"]}
    assert all(env[LAUNCHED] == "1" and int(env["OMP_NUM_THREADS"]) >= 1 for env in environments)
    assert "OMP_NUM_THREADS" not in local_environments("torch", 2, environ={"OMP_NUM_THREADS": "3"})[0]


def test_local_keras_workers_get_one_port_each_in_tf_config():
    environments = local_environments("keras", 3, environ={})
    clusters = [json.loads(env["TF_CONFIG"])["cluster"]["worker"] for env in environments]
    assert clusters[0] == clusters[1] == clusters[2] and len(set(clusters[0])) == 3
    assert [this_worker(env).rank for env in environments] == [0, 1, 2]


def test_a_global_batch_splits_into_disjoint_shares_that_make_it_whole():
    batch = list(range(33))
    shares = [split_batch(batch, rank, 2) for rank in range(2)]
    assert sorted(shares[0] + shares[1]) == batch and not set(shares[0]) & set(shares[1])
    assert [len(share) for share in shares] == [17, 16]
    assert split_batch(batch, 0, 1) == batch


def test_the_tally_counts_what_the_training_loops_report_within_its_block():
    count(5, 100, 32, 32)  # outside a block: counted nowhere
    with counting() as tally:
        count(10, 300, 32, 16)
        count(4, 120, 32, 16)
    assert tally.as_dict() == {"steps": 14, "samples": 420, "global_batch": 32, "worker_batch": 16}
    figures = training_figures([tally.as_dict(), {**tally.as_dict(), "samples": 410}])
    assert figures == {"global_batch": 32, "worker_batch": 16, "steps": [14, 14], "samples": [420, 410]}
    assert training_figures([{"steps": 0, "samples": 0, "global_batch": 0, "worker_batch": 0}]) == {}


class _Data:
    def fingerprint(self):
        return "digits"


def test_workers_change_the_cache_keys_of_trained_steps_and_the_report_says_how_many():
    recipe = _recipe()
    assert cache_key(recipe.compute, 1) == []
    assert cache_key(recipe.compute, 2) == [{"device": "auto", "precision": "float32", "workers": 2}]
    first = teacher_key(recipe, _Data(), "torch")
    assert first != teacher_key(recipe, _Data(), "torch", workers=2)
    assert stage_keys(recipe, first) != stage_keys(recipe, first, workers=2)
    assert Compute(workers=2).describe()["workers"] == 2


def test_workers_are_refused_for_a_framework_without_an_engine_and_for_analyze_or_search(monkeypatch):
    two_workers = _recipe("keras", compute={"workers": 2})
    assert check_support(two_workers) == "keras" and check_support(_recipe("torch", compute={"workers": 2})) == "torch"
    monkeypatch.delitem(support.DISTRIBUTED_ENGINES, "keras")
    assert "compute.workers" in support_refusal(two_workers)
    with pytest.raises(RecipeError, match="edgekit compress \\(--workers N\\)"):
        check_one_process(two_workers, "analyze")
    with pytest.raises(RecipeError, match="greater than or equal to 1"):
        _recipe(compute={"workers": 0})


def test_each_launched_worker_runs_the_same_command_line():
    argv = worker_argv("r.yaml", "out", ("seed=1", "compute.workers=2"), True, False, True, "/c", False)
    assert argv == ["compress", "r.yaml", "--output", "out", "--set", "seed=1", "--set", "compute.workers=2",
                    "--quiet", "--no-cache", "--cache-dir", "/c"]


# ---- the launcher, on stand-in workers (small Python programs) -------------------------------

def _started(*programs: str) -> list[launch.Launched]:
    return [launch.Launched(rank, subprocess.Popen([sys.executable, "-c", program]), None)
            for rank, program in enumerate(programs)]


SLEEPS = "import time; time.sleep(60)"


def test_the_launcher_returns_worker_zeros_code_when_all_finish():
    assert launch._watch(_started("import sys; sys.exit(1)", "pass")) == 1


def test_a_killed_worker_fails_the_run_with_exit_3_naming_it_and_the_others_are_stopped(monkeypatch):
    monkeypatch.setattr(launch, "STOP_GRACE_S", 5.0)
    workers = _started(SLEEPS, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    start = time.monotonic()
    with pytest.raises(launch.WorkerFailed) as failed:
        launch._watch(workers)
    assert failed.value.exit_code == 3
    assert f"worker 1 (pid {workers[1].process.pid}) was killed by SIGKILL" in str(failed.value)
    assert workers[0].process.returncode == -signal.SIGTERM and time.monotonic() - start < 30


def test_a_worker_that_only_lost_its_peers_is_reported_when_no_other_is_to_blame(monkeypatch):
    monkeypatch.setattr(launch, "LOST_GRACE_S", 0.5)
    workers = _started(f"import sys; sys.exit({WorkerLost.LOST_EXIT})", SLEEPS)
    with pytest.raises(launch.WorkerFailed, match="worker 0 .* lost contact"):
        launch._watch(workers)
    assert workers[1].process.returncode is not None
