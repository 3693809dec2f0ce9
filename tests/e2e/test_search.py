"""`edgekit search` end to end: recipes/digits_search.yaml searched with the real CLI, on Ray.

The example recipe searches the student's width, the share of channels pruned and the precision
for a digits model within 10 KB at 96% accuracy (its gates). One 16-trial search on two local
workers, with a fresh stage cache, is shared by the tests that read it; another runs with one worker
and a third on a two-node Ray cluster started here on loopback, and all three must find the same
Pareto front. Those two use the first search's stage cache: the trials they sample must be the first
search's, so they train nothing (a trial that sampled other values would train). The wall-time
comparison with fresh caches is benchmarks/search_workers.py's. Resumption and the shared student
are in test_search_resume.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, read_report, run_edgekit

pytestmark = pytest.mark.slow

RECIPE = ROOT / "recipes" / "digits_search.yaml"
GATES = {"max_size": 20_000, "min_accuracy": 0.96}  # recipes/digits_search.yaml's gates


def front_params(report: dict) -> set:
    """The Pareto front as the set of its trials' values (duplicates of a configuration count once)."""
    search = report["search"]
    return {tuple(sorted(p["params"].items())) for p in search["points"] if p["trial"] in search["front"]}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    base = tmp_path_factory.mktemp("search")
    out = base / "run"
    result = run_edgekit("search", str(RECIPE), "--workers", "2", "--output", str(out), "--json",
                         "--cache-dir", str(base / "cache"), timeout=900)
    return out, result


def test_search_finds_a_front_and_ships_a_model_no_example_recipe_meets(two_workers):
    out, result = two_workers
    assert result.returncode == 0, result.stderr[-3000:]
    report = read_report(out)
    search = report["search"]

    assert search["completed"] + search["failed"] == 16 and search["completed"] >= 14
    distinct = {tuple(p["values"].values()) for p in search["points"] if p["trial"] in search["front"]}
    assert len(distinct) >= 3, search["front"]
    chosen = next(p for p in search["points"] if p["trial"] == search["chosen"])
    assert search["feasible"] and chosen["feasible"] and chosen["pareto"]
    # the smallest feasible point of the front is shipped
    assert chosen["bytes"] == min(p["bytes"] for p in search["points"] if p["trial"] in search["front"])
    # the shipped files meet the gates on the test split too, measured on their runtimes
    finals = [a for a in report["artifacts"] if a["role"] == "final"]
    assert {a["format"] for a in finals} == {"tflite", "onnx"} and report["passed"] and report["gates"]
    for artifact in finals:
        assert artifact["bytes"] <= GATES["max_size"] and artifact["accuracy"] >= GATES["min_accuracy"]
        assert (out / artifact["name"]).stat().st_size == artifact["bytes"]
    # ... which no example recipe does (their recorded figures, test split)
    expected = json.loads((ROOT / "tests" / "e2e" / "expected_metrics.json").read_text())
    for recipe, figures in ((r, f) for r, f in expected.items() if r.endswith(".yaml")):
        models = [a for name, a in figures["artifacts"].items() if name.startswith("model.")]
        meets = all((a.get("bytes") or float("inf")) <= GATES["max_size"] and a["accuracy"] >= GATES["min_accuracy"]
                    for a in models)
        assert not meets, f"{recipe} already meets the search's gates"


def test_search_writes_its_files_and_the_front_in_the_report(two_workers):
    out, result = two_workers
    summary = json.loads(result.stdout)
    report = read_report(out)

    assert summary["search"]["chosen"] == report["search"]["chosen"] and len(summary["search"]["points"]) == 16
    rows = (out / "search" / "trials.csv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith("trial,state,stages.0.distill.student.width")
    pareto = json.loads((out / "search" / "pareto.json").read_text())
    assert pareto["chosen"] == report["search"]["chosen"] and pareto["split"] == "validation"
    assert (out / "search" / "journal.log").stat().st_size > 0
    assert all((out / "search" / "trials" / str(p["trial"]) / "report.json").exists()
               for p in report["search"]["points"])
    html = (out / "report.html").read_text()
    assert 'id="plot-search-pareto"' in html and "chosen (trial" in html
    assert "## Search" in (out / "report.md").read_text()
    resolved = (out / "recipe.resolved.yaml").read_text()
    chosen = next(p for p in report["search"]["points"] if p["trial"] == report["search"]["chosen"])
    assert f"width: {chosen['params']['stages.0.distill.student.width']}" in resolved
    assert not (out.parent / ".run.search").exists(), "the state directory is removed once the search is written"


def test_one_worker_finds_the_same_front(two_workers, tmp_path):
    out = tmp_path / "run"

    result = run_edgekit("search", str(RECIPE), "--workers", "1", "--output", str(out), "-q",
                         "--cache-dir", str(two_workers[0].parent / "cache"), timeout=900)

    assert result.returncode == 0, result.stderr[-3000:]
    report = read_report(out)
    assert report["search"]["workers"] == 1
    assert report["search"]["cache"]["trained_steps"] == 0, "the one-worker search sampled other trials"
    assert front_params(report) == front_params(read_report(two_workers[0]))
    assert report["search"]["chosen"] == read_report(two_workers[0])["search"]["chosen"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            table[int(entry.name)] = (parent, cmdline)
    return table


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _stop_cluster(temp: str, port: int) -> None:
    """Kill the processes of the cluster started in `temp` on `port`, and their children (the workers).

    Not `ray stop --force`: that kills every Ray process of the machine, among them the local Ray
    instance of a search that another test (or the benchmark smoke test) runs at the same time."""
    table = _processes()
    marks = (temp, f":{port} ", f"={port} ")
    doomed = {pid for pid, (_, cmd) in table.items() if any(mark in cmd + " " for mark in marks)}
    grown = True
    while grown:
        children = {pid for pid, (parent, _) in table.items() if parent in doomed} - doomed
        grown = bool(children)
        doomed |= children
    doomed.discard(os.getpid())
    for pid in doomed:  # SIGKILL, as `ray stop --force` sends: the GCS server ignores SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in doomed):
        time.sleep(0.2)


@pytest.fixture
def ray_cluster():
    """A two-node Ray cluster on this machine (a head and a second node, one CPU each), stopped after.
    Its temp dir is short: Ray's socket paths must fit the 107 bytes of a Unix socket name."""
    ray = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}
    port = _free_port()
    common = ["--num-cpus", "1", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    try:
        subprocess.run([ray, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                        "--temp-dir", temp, *common], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=120)
        yield f"127.0.0.1:{port}", env
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"ray start failed: {exc.stderr[-2000:]}")
    finally:
        _stop_cluster(temp, port)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_two_node_ray_cluster_finds_the_same_front(two_workers, ray_cluster, tmp_path):
    address, env = ray_cluster
    out = tmp_path / "run"

    os.environ["RAY_AUTH_MODE"] = env["RAY_AUTH_MODE"]
    try:
        result = run_edgekit("search", str(RECIPE), "--ray-address", address, "--output", str(out), "-q",
                             "--cache-dir", str(two_workers[0].parent / "cache"), timeout=900)
    finally:
        del os.environ["RAY_AUTH_MODE"]

    assert result.returncode == 0, result.stderr[-3000:]
    report = read_report(out)
    assert report["search"]["ray_address"] == address and report["search"]["workers"] == 2  # the cluster's CPUs
    assert report["search"]["cache"]["trained_steps"] == 0, "the cluster's search sampled other trials"
    assert front_params(report) == front_params(read_report(two_workers[0]))

    # without --ray-address the trials run on a Ray instance of their own, even beside a cluster
    # that ray.init() would join by itself (RAY_ADDRESS, or the last `ray start` of this machine)
    local = ("import ray; from edgekit.search.execution import ray_pool\n"
             "with ray_pool(1, None):\n    print(len(ray.nodes()), ray.cluster_resources()['CPU'])")
    probe = subprocess.run([sys.executable, "-c", local], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**env, "RAY_ADDRESS": address})
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.split() == ["1", "1.0"]
