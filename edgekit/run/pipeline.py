"""Run a recipe: teacher -> stages -> export -> evaluate on runtimes -> report -> gates.

Everything is written into a staging directory that replaces `runs/<name>/` only when the run
finished (gates may fail: the artifacts and report are still kept, with exit code 1).

In a group of training workers (`edgekit.workers`: `--workers N`, torchrun, TF_CONFIG) every
worker trains the teacher and the stages together; only worker 0 exports, measures and writes.

    >>> result = run(load_recipe("recipes/quickstart.yaml"))
    >>> result.exit_code, result.run_dir
    (0, PosixPath('runs/quickstart'))
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit import __version__
from edgekit.artifact import Artifact
from edgekit.run.cache import DISABLED, StageCache
from edgekit.run.bundle import model_card, write_labels, write_model_card
from edgekit.run.c_array import write_c_array
from edgekit.data import Dataset, load_dataset
from edgekit.environment import describe_environment
from edgekit.run.exporting import export_all
from edgekit.gates import evaluate_gates, verdict
from edgekit.run.measuring import measure_exports, measure_teacher
from edgekit.progress import SILENT, Progress
from edgekit.recipe import Recipe, TrainConfig, resolved_yaml
from edgekit.report import SCHEMA, write_report
from edgekit.run.context import RunContext
from edgekit.run.reuse import exports_key, restore_exports, stage_keys, store_exports, teacher_key
from edgekit.run.rundir import check_output_is_safe, staged_directory
from edgekit.stages import run_stage
from edgekit.recipe.support import check_support, engine_of
from edgekit.run.validation import build_teacher, check_files
from edgekit.run.verdicts import flag_artifacts
from edgekit.errors import InputError
from edgekit.workers import ALONE, Worker, this_worker


@dataclass
class RunResult:
    report: dict
    run_dir: Path
    exit_code: int
    leader: bool = True  # False on a training worker other than 0, which writes and reports nothing


def output_dir(recipe: Recipe, override: str | Path | None = None) -> Path:
    """--output, else the recipe's `output:`, else runs/<name>/ in the working directory."""
    if override:
        return Path(override)
    if recipe.output:
        return Path(recipe.output)
    return Path("runs") / recipe.name


def recipe_hash(recipe: Recipe) -> str:
    return hashlib.sha256(resolved_yaml(recipe).encode()).hexdigest()


def obtain_teacher(ctx: RunContext) -> Artifact:
    """Load the teacher from teacher.path, or build it from the zoo and train it (or reuse it from
    the stage cache). The stages' preflight checks run on it before any stage trains."""
    if ctx.recipe.teacher.path:
        return _load_teacher(ctx)
    key = ctx.keys.get("teacher")
    with ctx.claim(key):
        cached = ctx.reuse(key)
        if cached is not None:
            ctx.backend.preflight(cached.model, ctx)
            return cached
        return _train_teacher(ctx, key)


def _load_teacher(ctx: RunContext) -> Artifact:
    recipe, data, backend = ctx.recipe, ctx.dataset, ctx.backend
    teacher = recipe.teacher
    path = recipe.resolve_path(teacher.path)
    with ctx.stage("teacher", f"loaded {path.name}", {"path": str(teacher.path)}) as record:
        model = backend.load(path, teacher.factory, teacher.trust_code, teacher.custom_objects)
        backend.check_compatible(model, data, recipe.task, where=str(path))
        backend.preflight(model, ctx)
        record["metrics"]["params"] = backend.describe(model)["params"]
    return Artifact(ctx.framework, model, source=str(teacher.path))


def _train_teacher(ctx: RunContext, key: str | None) -> Artifact:
    recipe, data, backend = ctx.recipe, ctx.dataset, ctx.backend
    teacher = recipe.teacher
    train = teacher.train or TrainConfig()
    config = {"build": teacher.build.model_dump(), "train": train.model_dump()}
    with ctx.stage("teacher", teacher_summary(recipe), config) as record, ctx.computing(record):
        model = build_teacher(recipe, data, backend)
        backend.preflight(model, ctx)
        model = backend.train(model, data, train.epochs, train.batch_size, train.learning_rate, recipe.seed,
                              progress=ctx.progress.task, description="train teacher", freeze=teacher.build.freeze)
        if train.fine_tune:  # the head trained on the frozen base; now all of it, BatchNorm kept frozen
            record["details"] = {"head_only": in_framework_figures(Artifact(ctx.framework, model), ctx)}
            model = backend.train(model, data, train.fine_tune.epochs, train.batch_size, train.fine_tune.learning_rate,
                                  recipe.seed, progress=ctx.progress.task, description="fine-tune teacher",
                                  freeze="norm")
        record["metrics"]["params"] = backend.describe(model)["params"]
        record["trained"] = True
    artifact = Artifact(ctx.framework, model, source=f"zoo:{teacher.build.arch}")
    ctx.keep(key, artifact, record)
    return artifact


def teacher_summary(recipe: Recipe) -> str:
    """How the report's teacher step says the zoo teacher was made: built, loaded, frozen, fine-tuned."""
    build, train = recipe.teacher.build, recipe.teacher.train or TrainConfig()
    text = f"built {build.arch} (width {build.width:g})"
    if build.weights:
        text += f" on the pretrained base {Path(build.weights).name}"
    if build.freeze == "base":
        text += f", trained the head {_epochs(train.epochs)} with the base frozen"
    else:
        text += f" and trained {_epochs(train.epochs)}"
    if train.fine_tune:
        text += (f", then fine-tuned the whole model {_epochs(train.fine_tune.epochs)} at learning rate "
                 f"{train.fine_tune.learning_rate:g} (BatchNorm frozen)")
    return text


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def apply_stages(artifact: Artifact, ctx: RunContext) -> Artifact:
    """Run each stage on the previous one's artifact (or reuse it from the stage cache); record its
    details and in-framework figures. A step's cache key is claimed while it runs, so concurrent runs
    (search trials) that share it train it once: the others wait, then reuse it."""
    keys = ctx.keys.get("stages") or [None] * len(ctx.recipe.stages)
    for stage, key in zip(ctx.recipe.stages, keys):
        with ctx.claim(key):
            artifact = ctx.reuse(key) or _run_stage(stage, key, artifact, ctx)
    return artifact


def _run_stage(stage, key: str | None, artifact: Artifact, ctx: RunContext) -> Artifact:
    config = stage.config
    with ctx.stage(stage.kind, config.summary(), config.model_dump(mode="json")) as record, ctx.computing(record):
        result = run_stage(artifact, config, ctx)
        if result.model is not artifact.model or result.details is not artifact.details:
            record["details"] = dict(result.details)
        if result.model is not artifact.model:
            record["metrics"].update(in_framework_figures(result, ctx))
            record["trained"] = True
    if result.model is not artifact.model:
        ctx.keep(key, result, record)
    return result


def in_framework_figures(artifact: Artifact, ctx: RunContext) -> dict:
    """Parameters and test-set quality of a stage's model in its framework (a simulation for QAT)."""
    from edgekit.run.measuring import METRICS, quality_figures

    outputs = ctx.backend.predict(artifact.model, ctx.dataset.x_test)
    quality = METRICS[ctx.recipe.task](outputs, ctx.dataset.y_test)
    return {"params": ctx.backend.describe(artifact.model)["params"], **quality_figures(quality)}


def run(recipe: Recipe, output: str | Path | None = None, progress: Progress = SILENT,
        cache: StageCache = DISABLED, measure_validation: bool = False) -> RunResult:
    """Run `recipe` end to end and return the report, the run directory and the exit code (0 or 1).

    With an enabled `cache`, trained steps and exported files of earlier runs are reused. With
    `measure_validation`, each file is also measured on the validation split (search trials).
    A worker other than worker 0 of a training group trains along and returns an empty report."""
    framework = check_support(recipe)
    check_files(recipe)
    worker = this_worker()
    check_workers(worker, framework)
    np.random.seed(recipe.seed)
    target = output_dir(recipe, output)
    if worker.leader:
        check_output_is_safe(target, _inputs_of(recipe))
    dataset = load_dataset(recipe.data, task=recipe.task, seed=recipe.seed, resolve=recipe.resolve_path,
                           cache_dir=cache.root / "data" if cache.enabled else None)
    keys = cache_keys(recipe, dataset, framework, worker.count) if cache.enabled else {}
    ctx = RunContext(recipe, dataset, framework, progress, cache=cache, keys=keys,
                     measure_validation=measure_validation)
    with joined(ctx, worker):
        if not worker.leader:
            apply_stages(obtain_teacher(ctx), ctx)
            return RunResult({}, target, 0, leader=False)
        return _lead(ctx, target)


@contextlib.contextmanager
def joined(ctx: RunContext, worker: Worker) -> Iterator[None]:
    """Within the block, `ctx` trains as `worker` of its training group (nothing to join alone)."""
    if not worker.distributed:
        yield
        return
    with ctx.backend.join(worker, ctx.compute_of(worker)) as group:
        ctx.group = group
        try:
            yield
        finally:
            ctx.group = ALONE


def _lead(ctx: RunContext, target: Path) -> RunResult:
    """The run as its only or leading worker: train, export, measure, report, into `target`."""
    recipe, progress, cache, keys = ctx.recipe, ctx.progress, ctx.cache, ctx.keys
    with staged_directory(target) as workdir:
        ctx.workdir = workdir
        # a group's workers must all train: the leader alone serving every step from the cache would leave them waiting
        restorable = keys and not ctx.group.worker.distributed
        restored = restore_exports(cache, keys["exports"], workdir) if restorable else None
        if restored is not None:
            exports, teacher_entry, teacher_outputs, records = restored
            ctx.stages.extend(records)
            progress.message("[green]✓[/] every trained step and exported file came from the stage cache")
            final_model = lambda: rebuilt_final(ctx)  # noqa: E731  (only a flag needs it)
        else:
            teacher = obtain_teacher(ctx)
            final = apply_stages(teacher, ctx)
            final_model = lambda: final  # noqa: E731
            exports = export_all(teacher, final, ctx)
            teacher_entry, teacher_outputs = measure_teacher(teacher, ctx)
            if keys:
                problem = store_exports(cache, keys["exports"], exports, teacher_entry, teacher_outputs, ctx.stages)
                ctx.warnings.extend([problem] if problem else [])
        artifacts = [teacher_entry, *measure_exports(exports, teacher_outputs, ctx)]
        artifacts = flag_artifacts(artifacts, final_model, teacher_outputs, ctx)
        report = _assemble(recipe, ctx, artifacts)
        if recipe.export.c_array:
            report["c_array"] = write_c_array(report, workdir)
        _write_bundle(recipe, ctx, report, workdir)
        write_report(workdir, report)
    return RunResult(report, target, report["exit_code"])


def rebuilt_final(ctx: RunContext) -> Artifact:
    """The final artifact of a run whose files came from the stage cache (for the alternatives of a
    flag, `edgekit.run.verdicts`): the teacher and the stages again, served by the cache, in a
    scratch context whose records and messages go nowhere."""
    scratch = replace(ctx, stages=[], warnings=[], progress=SILENT)
    return apply_stages(obtain_teacher(scratch), scratch)


def cache_keys(recipe: Recipe, dataset: Dataset, framework: str, workers: int = 1) -> dict:
    first = teacher_key(recipe, dataset, framework, workers)
    stages = stage_keys(recipe, first, workers)
    return {"teacher": first, "stages": stages, "exports": exports_key(recipe, first, stages[-1] if stages else first)}


def check_workers(worker: Worker, framework: str) -> None:
    """InputError when this process is one of several training workers but `framework` cannot
    train on several (`recipe.support.DISTRIBUTED_ENGINES`)."""
    if worker.distributed and not engine_of(framework):
        raise InputError(f"{worker.source}: this process is worker {worker.rank} of {worker.count}, but {framework} "
                         "models cannot train on several workers in this version. Start edgekit as one process "
                         "(without torchrun or TF_CONFIG).")


def _inputs_of(recipe: Recipe) -> list[Path]:
    """Files a run reads, which its output directory must never contain."""
    paths = [recipe.source] if recipe.source else []
    return paths + [recipe.resolve_path(value) for _, value in recipe.named_files()]


def _assemble(recipe: Recipe, ctx: RunContext, artifacts: list[dict]) -> dict:
    report = {
        "schema": SCHEMA,
        "edgekit_version": __version__,
        "name": recipe.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": str(recipe.source) if recipe.source else None,
        "recipe_sha256": recipe_hash(recipe),
        "task": recipe.task,
        "metric": "accuracy" if recipe.task == "classification" else "mae",
        "framework": ctx.framework,
        "compute": ctx.compute_record(),
        "environment": describe_environment(),
        "data": ctx.dataset.summary(),
        "stages": ctx.stages,
        "artifacts": artifacts,
        "warnings": ctx.warnings,
    }
    report["gates"] = evaluate_gates(report, recipe.gates.model_dump())
    report["exit_code"] = verdict(report["gates"])
    report["passed"] = report["exit_code"] == 0
    return report


def _write_bundle(recipe: Recipe, ctx: RunContext, report: dict, workdir: Path) -> None:
    (workdir / "recipe.resolved.yaml").write_text(resolved_yaml(recipe), encoding="utf-8")
    if not recipe.export.bundle:
        return
    data = ctx.dataset
    if recipe.task == "classification":
        write_labels(workdir, data.labels, data.num_classes)
    write_model_card(workdir, model_card(report, report["recipe_sha256"], data.preprocessing, data.labels, workdir))
