"""`edgekit analyze RECIPE`: which layers lose accuracy when the recipe's quantize stage runs, and why.

The teacher and the stages before `quantize` run as in `edgekit compress` (served by the stage
cache when they ran before); then, for the quantize stage's plan and every format of the recipe:
- the drop of each file's metric against the float model when only that layer is quantized (every
  other layer float) and when only that layer is kept float (every other layer quantized), each
  file exported by the format's own flow and run on its runtime, on the validation split;
- each layer's signal-to-quantization-noise ratio, from the field's own tool for the format
  (`Format.diagnose`: ONNX Runtime's `qdq_loss_debug`, AI Edge Quantizer's model validator), and
  its activation range statistics (largest value over the 99.9th percentile, largest channel range
  over the median channel's), which spot outlier channels, on the calibration samples (the
  ranges int8 is calibrated on).
The layers are ranked by the largest drop when quantized alone (then by the lowest SNR). The result
is the `analysis` section of the run's report.json, which report.md and report.html show as a
table and a plot. The run directory is `runs/<name>-analysis/` unless `--output` says otherwise.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edgekit import __version__
from edgekit.artifact import Artifact
from edgekit.data import load_dataset
from edgekit.environment import describe_environment
from edgekit.errors import InputError
from edgekit.formats.base import load
from edgekit.formats.registry import get_format
from edgekit.layouts import to_layout
from edgekit.progress import SILENT, Progress
from edgekit.recipe import Recipe
from edgekit.recipe.support import check_one_process, check_support
from edgekit.report import SCHEMA, write_report
from edgekit.run.accuracy_control import Search
from edgekit.run.cache import DISABLED, StageCache
from edgekit.run.context import RunContext
from edgekit.run.pipeline import apply_stages, cache_keys, obtain_teacher, recipe_hash
from edgekit.run.rundir import check_output_is_safe, staged_directory
from edgekit.run.validation import check_files

DIAGNOSE_SAMPLES = 64  # calibration samples the per-tensor tools run (the ranges int8 is calibrated on)


def _planned(recipe: Recipe, ctx: RunContext) -> Artifact:
    """The model the quantize stage receives, with the stage's plan (its overrides resolved)."""
    config = recipe.quantize
    if config is None or config.method != "ptq" or not config.plan().calibrated:
        raise InputError(f"{recipe.where('stages')}: edgekit analyze studies a post-training int8 or int16x8 plan; "
                         "add a stage `- quantize: {method: ptq, precision: int8}` (last)")
    before = recipe.model_copy(update={"stages": recipe.stages[:-1]})
    keys = {**ctx.keys, "stages": (ctx.keys.get("stages") or [None] * len(recipe.stages))[:-1]}
    artifact = apply_stages(obtain_teacher(replace(ctx, recipe=before, keys=keys)), replace(ctx, recipe=before, keys=keys))
    layers = config.resolve_layers(ctx.backend.weight_layers(artifact.model)) if config.layer_patterns() else {}
    return artifact.evolve("quantize", plan=config.plan().with_layers(layers))


def _diagnosed(search: Search, artifact: Artifact) -> dict:
    """{format: (tool, {layer: figures})} from each format's `diagnose`."""
    found = {}
    data = search.ctx.dataset
    with tempfile.TemporaryDirectory(prefix="edgekit-analyze-") as tmp:
        for name in search.ctx.recipe.export.formats:
            fmt = get_format(name)
            if not fmt.diagnose:
                continue
            float_path = Path(tmp) / f"float{fmt.suffix}"
            fmt.export(replace(artifact, plan=None), float_path, search.options, {}, {})
            layout = fmt.writer(artifact.framework).input_layout(search.options.channels_last)
            found[name] = load(fmt.diagnose)(float_path, artifact.plan, to_layout(data.x_calib[:DIAGNOSE_SAMPLES], layout))
    return found


def analysis(artifact: Artifact, ctx: RunContext) -> dict:
    """The `analysis` section for the planned `artifact` (see the module docstring)."""
    search = Search(ctx)
    layers = ctx.backend.weight_layers(artifact.model)
    rows = {layer: {"layer": layer, "quantized_alone": {}, "float_alone": {}, "snr_db": {}} for layer in layers}
    try:
        reference = search.float_metric(artifact)
        with ctx.progress.task(f"analyze {len(layers)} layers on the validation split", 2 * len(layers) + 2) as done:
            planned = search.measure("as planned", artifact, reference)
            done(1)
            for layer in layers:
                for key, plan in (("quantized_alone", artifact.plan.quantizing_only(layer, layers)),
                                  ("float_alone", artifact.plan.keeping_float(layer))):
                    found = search.measure(f"{key} {layer}", replace(artifact, plan=plan), reference, timed=False)
                    rows[layer][key] = {fmt: f["drop"] for fmt, f in found.figures.items()}
                    done(1)
            diagnosed = _diagnosed(search, artifact)
            done(1)
    finally:
        search.close()
    tools = {}
    for fmt, (tool, per_layer) in diagnosed.items():
        tools[fmt] = tool
        for layer, figures in per_layer.items():
            if layer not in rows:
                continue
            if "snr_db" in figures:
                rows[layer]["snr_db"][fmt] = figures["snr_db"]
            for key in ("max_abs", "range_ratio", "channel_ratio"):
                if key in figures:
                    rows[layer][key] = figures[key]
    ranked = sorted(rows.values(), key=lambda r: (-max(r["quantized_alone"].values(), default=0.0),
                                                  min(r["snr_db"].values(), default=np.inf)))
    return {"split": "validation", "samples": int(len(ctx.dataset.x_val)), "metric": search.metric,
            f"float_{search.metric}": round(reference, 5),
            "plan": {"precision": artifact.plan.precision, "layers": dict(artifact.plan.layers)},
            "as_planned": planned.figures, "tools": tools, "tool_samples": "calibration", "layers": ranked}


def run_analysis(recipe: Recipe, output: str | Path | None = None, progress: Progress = SILENT,
                 cache: StageCache = DISABLED) -> tuple[dict, Path]:
    """Analyze `recipe` and write report.json / report.md / report.html; returns (report, run dir)."""
    framework = check_support(recipe)
    check_one_process(recipe, "analyze")
    check_files(recipe)
    np.random.seed(recipe.seed)
    target = Path(output) if output else Path("runs") / f"{recipe.name}-analysis"
    check_output_is_safe(target, [recipe.source] if recipe.source else [])
    dataset = load_dataset(recipe.data, task=recipe.task, seed=recipe.seed, resolve=recipe.resolve_path,
                           cache_dir=cache.root / "data" if cache.enabled else None)
    keys = cache_keys(recipe, dataset, framework) if cache.enabled else {}
    with staged_directory(target) as workdir:
        ctx = RunContext(recipe, dataset, framework, progress, workdir, cache=cache, keys=keys)
        artifact = _planned(recipe, ctx)
        with ctx.stage("analyze", f"{artifact.plan.precision}, {', '.join(recipe.export.formats)}") as record:
            section = analysis(artifact, ctx)
            record["details"] = {"ranked_first": [row["layer"] for row in section["layers"][:3]]}
        report = {"schema": SCHEMA, "edgekit_version": __version__, "name": recipe.name,
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  "recipe": str(recipe.source) if recipe.source else None, "recipe_sha256": recipe_hash(recipe),
                  "task": recipe.task, "metric": section["metric"], "framework": framework,
                  "environment": describe_environment(), "data": dataset.summary(), "stages": ctx.stages,
                  "artifacts": [], "warnings": ctx.warnings, "gates": [], "exit_code": 0, "passed": True,
                  "analysis": section}
        write_report(workdir, report)
    return report, target
