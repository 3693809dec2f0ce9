"""Where trials run: Ray tasks, on a local Ray instance (`--workers N`) or a cluster (`--ray-address`).

Every trial is a Ray task of one CPU, also with one worker, so a trial runs in the same kind of
process (and with the same thread settings) whatever the parallelism: the search's results do not
depend on `--workers`. Ray schedules the tasks; `TrialPool.run` submits a batch and yields the
results as they finish. Ray's own logs and the workers' output stay in Ray's session directory
unless `--debug`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator, Optional

from edgekit.errors import InputError
from edgekit.search.trial import TrialResult, TrialSpec, run_trial

#: environment the workers need to behave like this process (a cluster's workers do not inherit it)
PASSED_ENVIRONMENT = ("EDGEKIT_DEBUG", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH", "XDG_CACHE_HOME", "HOME")


class TrialPool:
    """Runs trials as Ray tasks, at most `slots` at a time."""

    def __init__(self, slots: int):
        import ray

        self.slots = slots
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        self._running: dict = {}

    def run(self, specs: list[TrialSpec]) -> Iterator[TrialResult]:
        """Run `specs` (at most `slots` at once) and yield each result as it finishes."""
        import ray

        waiting = list(specs)
        try:
            while waiting or self._running:
                while waiting and len(self._running) < self.slots:
                    spec = waiting.pop(0)
                    self._running[self._task.remote(spec)] = spec
                done, _ = ray.wait(list(self._running), num_returns=1)
                spec = self._running.pop(done[0])
                yield self._result(done[0], spec)
        finally:
            for ref in self._running:
                ray.cancel(ref, force=True)
            self._running.clear()

    @property
    def running(self) -> int:
        return len(self._running)

    @staticmethod
    def _result(ref, spec: TrialSpec) -> TrialResult:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker died (out of memory, a crash in native code)
            cause = " ".join(str(exc).split())[:600]
            return TrialResult(spec.number, spec.params, "failed", exit_code=3,
                               error=f"the trial's Ray worker failed: {type(exc).__name__}: {cause}")


@contextlib.contextmanager
def ray_pool(workers: Optional[int], address: Optional[str], debug: bool = False) -> Iterator[TrialPool]:
    """A TrialPool on a fresh local Ray instance of `workers` CPUs, or on the cluster at `address`
    (`workers` then caps the trials in flight; default: the cluster's CPUs). Ray is shut down after."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env = {key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ}
    options = dict(include_dashboard=False, log_to_driver=debug, configure_logging=True,
                   logging_level=logging.INFO if debug else logging.ERROR, runtime_env={"env_vars": env})
    try:
        if address:
            ray.init(address=address, **options)
        else:
            # "local": a new instance even where `ray start` left a cluster on this machine, which
            # ray.init() without an address would otherwise join
            ray.init(address="local", num_cpus=workers or 1, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        target = f"--ray-address {address}" if address else "a local Ray instance"
        text = " ".join(str(exc).split())
        if "auth" in text.lower():
            hint = ("The cluster uses Ray's token authentication: set RAY_AUTH_MODE=token, with its token in "
                    "~/.ray/auth_token or RAY_AUTH_TOKEN, as for any Ray client.")
        elif address:
            hint = "Check that `ray start --head` runs there and that the address is its GCS address (host:port)."
        else:
            hint = "Re-run with --debug for Ray's log."
        raise InputError(f"{target}: Ray could not start or connect ({text[:400]}). {hint}") from None
    try:
        slots = workers or (int(ray.cluster_resources().get("CPU", 1)) if address else 1)
        yield TrialPool(max(1, slots))
    finally:
        ray.shutdown()
