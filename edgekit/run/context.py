"""RunContext: what every stage of a run may read, and how a step is timed, recorded and cached.

The backend is resolved from the framework's name on first use (`RunContext.backend`): a run served
wholly from the stage cache measures its files without importing TensorFlow or torch, and code
that only needs the name reads `RunContext.framework`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator

from rich.markup import escape

from edgekit.artifact import Artifact
from edgekit.backends import get_backend
from edgekit.backends.base import Backend
from edgekit.compute import Compute, counting
from edgekit.data import Dataset
from edgekit.errors import EdgekitError, InputError, StageError, WorkerLost
from edgekit.progress import SILENT, Progress
from edgekit.recipe import Recipe
from edgekit.run.cache import DISABLED, StageCache
from edgekit.run.reuse import load_model, store_model
from edgekit.workers import ALONE, Group


@dataclass
class RunContext:
    """What every stage may read: the recipe, the data, the backend, progress and the run's log."""

    recipe: Recipe
    dataset: Dataset
    framework: str
    progress: Progress = SILENT
    workdir: Path | None = None
    stages: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cache: StageCache = DISABLED
    keys: dict = field(default_factory=dict)  # cache keys: "teacher", "stages" (one per stage), "exports"
    measure_validation: bool = False  # also measure each file on the validation split (search trials)
    group: Group = ALONE  # the training workers (edgekit.workers); this process alone by default

    @cached_property
    def backend(self) -> Backend:
        """The framework's backend, imported on first use."""
        return get_backend(self.framework)

    @cached_property
    def resolved_compute(self) -> Compute:
        """The device and precision the recipe's `compute:` block resolves to here (on first use,
        since resolving imports the framework)."""
        return self.backend.resolve_compute(self.recipe.compute, self.recipe.where("compute", "device"))

    @property
    def compute(self) -> Compute:
        """This worker's compute (`compute_of`)."""
        return self.compute_of(self.group.worker)

    def compute_of(self, worker) -> Compute:
        """The compute of `worker` (edgekit.workers.Worker): the resolved device (on GPUs, one per
        local worker unless the recipe names one), the precision, and the size of its group."""
        compute = self.resolved_compute
        if compute.on_gpu and worker.distributed and self.recipe.compute.device in ("auto", "cuda"):
            compute = replace(compute, device=f"cuda:{worker.local}")
        return replace(compute, workers=worker.count)

    @property
    def leader(self) -> bool:
        """True on the worker that exports, measures and writes (the only one, in one process)."""
        return self.group.worker.leader

    @contextlib.contextmanager
    def computing(self, record: dict) -> Iterator[None]:
        """Train on the run's compute within the block; `record` (a step's) says which it was, with
        the batch sizes and each worker's optimizer steps and samples (gathered from every worker:
        all of them reach this point for every step)."""
        with self.backend.computing(self.compute), counting() as tally:
            yield
        tallies = self.group.gather(tally.as_dict())
        if record.get("trained"):
            record["compute"] = {**self.compute.describe(), **training_figures(tallies)}

    def compute_record(self) -> dict:
        """The report's `compute` section: what this run's training used, else what the cached steps
        were trained with, else what the recipe asks (nothing trained or was cached)."""
        if "resolved_compute" in self.__dict__:
            return self.compute.describe()
        trained = [record["compute"] for record in self.stages if record.get("compute")]
        return trained[0] if trained else self.recipe.compute.model_dump()

    def replay(self, record: dict, seconds: float) -> None:
        """Record a step taken from the stage cache: its original figures, this run's time."""
        replayed = {**record, "cached": True, "trained_wall_s": record.get("trained_wall_s", record["wall_s"]),
                    "wall_s": round(seconds, 3)}
        self.stages.append(replayed)
        self.progress.message(f"[green]✓[/] {escape(record['name'])}: {escape(record['summary'])} (from the stage cache)")

    def keep(self, key: str | None, artifact: Artifact, record: dict) -> None:
        """Store a trained step's model in the stage cache (a failure to store is a warning); only
        the leader writes the cache."""
        if key and self.cache.enabled and self.leader:
            problem = store_model(self.cache, key, artifact, self.backend, record)
            if problem:
                self.warnings.append(problem)

    def claim(self, key: str | None) -> contextlib.AbstractContextManager:
        """Hold `key` in the stage cache while its step runs (`StageCache.claim`); only the leader
        claims, since the other workers follow its choice (`reuse`) and never write the cache."""
        return self.cache.claim(key) if self.leader else contextlib.nullcontext()

    def reuse(self, key: str | None) -> Artifact | None:
        """The cached artifact for `key`, replayed into the report, or None (also when the entry
        cannot be read: a warning says so, and the step runs again). In a group of workers the
        leader chooses, and the others load the same entry or train with it."""
        artifact = self._reuse(key) if self.leader else None
        if not self.group.broadcast(artifact is not None) or self.leader:
            return artifact
        artifact = self._reuse(key)
        if artifact is None:
            raise InputError(f"worker {self.group.worker.rank} cannot read the stage cache entry {key} that "
                               "worker 0 reuses: put the stage cache (--cache-dir) where every worker can read "
                               "it, or train every step again with --no-cache.")
        return artifact

    def _reuse(self, key: str | None) -> Artifact | None:
        if not key or not self.cache.enabled or self.cache.entry(key) is None:
            return None
        start = time.perf_counter()
        loaded, problem = load_model(self.cache, key, self.backend, self)
        if loaded is None:
            if problem:
                self.warnings.append(problem)
                self.progress.message(f"[yellow]![/] {escape(problem)}")
            return None
        artifact, record = loaded
        self.replay(record, time.perf_counter() - start)
        return artifact

    def control_accuracy(self, artifact: Artifact, max_drop: float) -> Artifact:
        """The quantized artifact whose files keep within `max_drop` of the float model on the
        validation split, searched over plans (`edgekit.run.accuracy_control`); the quantize stage
        calls it for `max_drop`, since a stage cannot export or run files itself."""
        from edgekit.run.accuracy_control import control

        return control(artifact, max_drop, self)

    @contextlib.contextmanager
    def stage(self, name: str, summary: str = "", config: Any = None) -> Iterator[dict]:
        """Time a step and record it for the report; unexpected errors become StageError(name)."""
        record = {"name": name, "summary": summary, "config": config, "metrics": {}}
        start = time.perf_counter()
        try:
            yield record
        except (EdgekitError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if self.group.lost(exc):
                raise WorkerLost(name, f"{type(exc).__name__}: {str(exc).strip()}") from exc
            raise StageError(name, f"{type(exc).__name__}: {str(exc).strip()[:800]}") from exc
        record["wall_s"] = round(time.perf_counter() - start, 3)
        self.stages.append(record)
        self.progress.message(f"[green]✓[/] {escape(name)}: {escape(record['summary'])} ({record['wall_s']:.1f} s)")


def training_figures(tallies: list[dict]) -> dict:
    """A trained step's batch sizes and each worker's optimizer steps and samples (one entry per
    worker, in rank order), from the workers' `edgekit.compute.Tally`s."""
    first = tallies[0]
    if not any(tally["steps"] for tally in tallies):
        return {}
    return {"global_batch": first["global_batch"], "worker_batch": first["worker_batch"],
            "steps": [tally["steps"] for tally in tallies], "samples": [tally["samples"] for tally in tallies]}
