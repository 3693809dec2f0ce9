"""Which training worker this process is, read from the environment the frameworks document.

A run trains on several processes in two ways. `edgekit compress --workers N` starts N local
workers itself (`edgekit.run.launch`), each with the environment its framework's launcher would
give it; on a cluster, users start edgekit under `torchrun` or with their own `TF_CONFIG`. Either
way every worker reads its rank and the group's size here:

- torch: `RANK`, `WORLD_SIZE` (and `MASTER_ADDR`, `MASTER_PORT`, read by `init_process_group`), as
  `torchrun` sets them;
- Keras: `TF_CONFIG`, `{"cluster": {"worker": [host:port, ...]}, "task": {"type": "worker", "index": i}}`,
  as `tf.distribute.MultiWorkerMirroredStrategy` reads it (a `chief` entry counts as worker 0).

Every worker trains; only worker 0 (the leader) exports, measures, writes the run directory and
the stage cache.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Callable, Mapping

from edgekit.errors import InputError


@dataclass(frozen=True)
class Worker:
    """This process's place in its training group: worker `rank` of `count`, told by `source`."""

    rank: int = 0
    count: int = 1
    source: str = ""  # "torchrun", "TF_CONFIG", "" (one process)
    local: int = 0  # the rank among the workers on this machine (torchrun's LOCAL_RANK), for its GPU

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.count > 1


SOLO = Worker()


class Group:
    """The workers of a run, as one: `broadcast` gives every worker the leader's value, `gather`
    every worker's value in rank order. Every worker calls them at the same points of the run.

    This one is a single process's (both are local); a backend's `join` returns one built on its
    framework's collectives (torch.distributed, a tf.distribute strategy)."""

    def __init__(self, worker: Worker = SOLO):
        self.worker = worker

    def broadcast(self, value):
        return value

    def gather(self, value) -> list:
        return [value]

    def lost(self, error: BaseException) -> bool:
        """True when `error` is a collective that failed because another worker stopped."""
        return False


ALONE = Group()


def this_worker(environ: Mapping[str, str] | None = None) -> Worker:
    """The worker the environment says this process is (torchrun's variables first, then
    TF_CONFIG); one process when neither is set. InputError when they are malformed."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" in env or "RANK" in env:
        return _from_torchrun(env)
    if env.get("TF_CONFIG", "").strip():
        return _from_tf_config(env["TF_CONFIG"])
    return SOLO


def _from_torchrun(env: Mapping[str, str]) -> Worker:
    try:
        rank, count = int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError(f"RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}: these environment "
                         "variables must be whole numbers, as torchrun sets them") from None
    if count < 1 or not 0 <= rank < count:
        raise InputError(f"RANK={rank}, WORLD_SIZE={count}: the rank must be in 0..WORLD_SIZE-1. "
                         "Start edgekit under torchrun, or set both variables as torchrun does.")
    local = int(env.get("LOCAL_RANK", rank)) if str(env.get("LOCAL_RANK", rank)).isdigit() else rank
    return Worker(rank, count, "torchrun", local)


def _from_tf_config(text: str) -> Worker:
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError("TF_CONFIG: expected JSON like {\"cluster\": {\"worker\": [\"host:port\", ...]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": 0}} (TensorFlow's multi-worker "
                         "training guide)") from None
    members = {"chief": chiefs, "worker": workers}
    if kind not in members or not 0 <= index < len(members[kind]):
        raise InputError(f"TF_CONFIG: task {kind} {index} is not in the cluster "
                         f"({len(chiefs)} chief, {len(workers)} worker entries); edgekit trains on chief and "
                         "worker tasks only")
    rank = index if kind == "chief" else len(chiefs) + index
    return Worker(rank, len(chiefs) + len(workers), "TF_CONFIG", rank)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on the loopback interface now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def torchrun_environment(rank: int, count: int, ports: list[int]) -> dict[str, str]:
    """What torchrun sets for worker `rank` of `count` on one machine (`ports[0]` is the rendezvous)."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(ports[0]), "RANK": str(rank),
            "WORLD_SIZE": str(count), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(count)}


def tf_config_environment(rank: int, count: int, ports: list[int]) -> dict[str, str]:
    """The TF_CONFIG of worker `rank` of a local MultiWorkerMirroredStrategy cluster, one port each."""
    cluster = {"worker": [f"localhost:{port}" for port in ports[:count]]}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": rank}})}


#: per framework: the environment its own launcher gives a local worker, and how many ports it needs
LOCAL_LAUNCH: dict[str, tuple[Callable[[int, int, list[int]], dict[str, str]], Callable[[int], int]]] = {
    "torch": (torchrun_environment, lambda count: 1),
    "keras": (tf_config_environment, lambda count: count),
}


def local_environments(framework: str, count: int, environ: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """One environment per local worker of a `framework` group of `count` processes. Each worker
    gets its share of the cores as OMP_NUM_THREADS (as torchrun sets it), unless it is set already:
    workers that each start a thread per core slow one another down."""
    env = os.environ if environ is None else environ
    make, ports_needed = LOCAL_LAUNCH[framework]
    ports = free_ports(ports_needed(count))
    threads = {} if "OMP_NUM_THREADS" in env else {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // count))}
    return [{**make(rank, count, ports), **threads, LAUNCHED: "1"} for rank in range(count)]


#: set in the environment of the workers `edgekit compress --workers N` starts (edgekit.run.launch)
LAUNCHED = "EDGEKIT_LAUNCHED"

#: the variables `local_environments` may set, removed from a launched worker's inherited environment
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TF_CONFIG",
                    LAUNCHED)


def launched() -> bool:
    """True in a worker that `edgekit compress --workers N` started (its launcher reports failures)."""
    return os.environ.get(LAUNCHED) == "1"
