"""Honest flags, measured: a quantized file that is larger than, or not faster than, its float
baseline on its runtime gets a flag, with the evidence read from the file and a quick measurement of
what to use instead.

After the run measured every file, each final entry with a quantized precision is judged against
the float baseline of its format on the same runtime (`edgekit.report.flags.judge`; the plan's
`promises_speed` says whether speed was promised). Only when a flag fires:

1. the file is read (`edgekit.formats.inspect.inspect_model`, the same reader as `edgekit inspect`):
   the ops computing in float (for a .onnx, those ONNX Runtime's optimized CPU graph still runs in
   float, so a QDQ file that ORT runs in float is caught), and its largest float tensors;
2. the same final model is exported at float32 and at every other precision into a temporary
   directory by the format's own exporter (the path the run's files took), and each candidate and the
   shipped file are measured back to back on the same runtime with `edgekit.evaluate.measure_file`
   (a bounded number of runs and test samples), so their ratios share one load.

The entry then carries, beside its figures:

    "flags": {
      "kinds": [{"kind": "not_faster", "ratio": 6.6, "value": 1.9, "baseline_value": 0.29, "unit": "ms p50"}],
      "baseline": "baseline.tflite", "file": "model.tflite", "quantization": "mixed",
      "ops": [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "count": 1}, ...],
      "float_ops": [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "count": 1, "reason": "float32 inputs/outputs"}],
      "float_ops_from": "tensor types",
      "float_weights": [{"name": "...", "dtype": "float32", "bytes": 4096}],
      "runtime_ops": [{"op": "UNIDIRECTIONAL_SEQUENCE_LSTM", "count": 1, "in_baseline": true}],
      "alternatives": {"runtime": "litert", "runs": 30, "warmup": 3, "samples": 256, "wall_s": 4.2,
                       "candidates": [{"precision": "float32", "bytes": ..., "p50_ms": ..., "p50_ratio": 1.0,
                                       "bytes_ratio": 1.0, "accuracy": ..., "agreement": ...},
                                      {"precision": "int8", "shipped": true, ...}, {"precision": "dynamic", ...}],
                       "best": {"precision": "dynamic", "p50_ratio": 0.6, "bytes_ratio": 0.3, ...} | null,
                       "note": "..." (only when nothing could be measured)}}

Nothing here fails a run: a candidate that cannot be exported or run is listed with its `error`.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Callable

from rich.markup import escape

from edgekit.formats.base import ExportOptions
from edgekit.formats.registry import get_format
from edgekit.layouts import to_layout
from edgekit.precision import PLANS, plan_for
from edgekit.report.flags import best_alternative, judge

#: the quick measurement of the alternatives: at most this many latency runs, warm-up runs and test samples
RUNS, WARMUP, SAMPLES = 30, 3, 256
FLOAT = "float32"
_FLOAT_DTYPES = {"float32", "float64"}


def flag_artifacts(entries: list[dict], final_model: Callable[[], object], reference, ctx) -> list[dict]:
    """`entries` with a "flags" dict added to each final entry that earns one (see the module
    docstring). `final_model()` gives the final Artifact, called only when some flag fires."""
    baselines = {(e.get("format"), e.get("runtime")): e for e in entries if e.get("role") == "baseline"}
    memo: dict = {}
    out = []
    for entry in entries:
        baseline = baselines.get((entry.get("format"), entry.get("runtime")))
        precision = entry.get("precision")
        if entry.get("role") != "final" or baseline is None or precision not in PLANS:
            out.append(entry)
            continue
        kinds = judge(entry, baseline, PLANS[precision].promises_speed)
        if not kinds:
            out.append(entry)
            continue
        workdir = Path(ctx.workdir)
        flags = {"kinds": kinds, "baseline": baseline["name"], "file": entry["name"],
                 **_safely(file_evidence, workdir / entry["name"])}
        if entry.get("runtime") is None:  # a file no named runtime ran: its size flag stands alone
            flags["alternatives"] = {"runtime": None, "candidates": [], "best": None, "note": (
                "No alternative was measured: evaluate.runtimes names no runtime for this format.")}
        else:
            flags.update(_safely(runtime_evidence, workdir / entry["name"], workdir / baseline["name"],
                                 entry["runtime"]))
            flags["alternatives"] = measure_alternatives(entry, [k["kind"] for k in kinds], final_model,
                                                         reference, ctx, memo)
        out.append({**entry, "flags": flags})
        summary = ", ".join(f"{k['kind'].replace('_', ' ')} ({k['ratio']:.2f}x)" for k in kinds)
        ctx.progress.message(f"[yellow]![/] flag {escape(entry['name'])}: {escape(summary)}; measured the other "
                             f"precisions ({flags['alternatives'].get('wall_s', 0):.1f} s)")
    directory = memo.get("directory")
    if directory is not None:
        directory.cleanup()
    return out


def _safely(read: Callable[..., dict], *args) -> dict:
    """`read(*args)`, or {"evidence_error": why} when the file or runtime cannot tell: a flag never
    fails a run."""
    try:
        return read(*args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        return {"evidence_error": f"{type(exc).__name__}: {_short(exc)}"}


def file_evidence(path: Path, shown: int = 3) -> dict:
    """What the file says: its quantization kind, its 8 most frequent ops, the ops computing in float
    (grouped, with the first reason given for each) and its `shown` largest float32 tensors."""
    from edgekit.formats.inspect import inspect_model

    info = inspect_model(path, top=50)
    quantization = info["quantization"]
    counts = Counter(op["op"] for op in quantization["float_ops"])
    reasons: dict[str, str] = {}
    for op in quantization["float_ops"]:
        reasons.setdefault(op["op"], " ".join(str(op.get("reason", "")).split())[:200])
    float_ops = [{"op": name, "count": count, "reason": reasons[name]} for name, count in counts.most_common()]
    weights = [{"name": t["name"][:80], "dtype": t["dtype"], "bytes": t["bytes"]}
               for t in info["tensors_by_size"] if t["dtype"] in _FLOAT_DTYPES and t["bytes"] >= 256][:shown]
    ops = [{"op": name, "count": count} for name, count in list(info["ops"].items())[:8]]
    return {"quantization": quantization["kind"], "ops": ops, "float_ops": float_ops,
            "float_ops_from": quantization["float_ops_from"], "float_weights": weights}


def runtime_evidence(path: Path, baseline: Path, runtime: str) -> dict:
    """The ops the runtime runs with its own kernels rather than its accelerating delegate (LiteRT:
    outside XNNPACK; `undelegated_ops` of the session's description), each marked with whether the
    float baseline has it there too; {} for a runtime that does not say."""
    from edgekit.runtimes import get_runtime

    opened = get_runtime(runtime)
    with opened.open(path) as session:
        ops = session.describe().get("undelegated_ops")
    if ops is None:
        return {}
    with opened.open(baseline) as session:
        before = session.describe().get("undelegated_ops") or {}
    return {"runtime_ops": [{"op": op, "count": count, "in_baseline": op in before}
                            for op, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))]}


def _source(final_model: Callable[[], object], memo: dict):
    """(the final artifact as float weights with no plan, None) or (None, why there is none)."""
    if "source" not in memo:
        try:
            artifact = final_model()
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            memo["source"] = (None, f"the final model could not be rebuilt ({type(exc).__name__}: {_short(exc)})")
            return memo["source"]
        model = artifact.model
        if artifact.qat is not None:
            model = artifact.qat.float_model
        if model is None:
            memo["source"] = (None, "the quantization-aware model keeps no float weights, so no other "
                                    "precision can be exported from it")
        else:
            memo["source"] = (replace(artifact, model=model, qat=None, plan=None), None)
    return memo["source"]


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def measure_alternatives(entry: dict, kinds: list[str], final_model: Callable[[], object], reference, ctx,
                         memo: dict) -> dict:
    """Export the final model at float32 and every other precision, and measure them with the shipped
    file, back to back on the entry's runtime; ratios are to the float32 candidate."""
    start = time.perf_counter()
    recipe, data = ctx.recipe, ctx.dataset
    latency = recipe.evaluate.latency
    runs, warmup, samples = min(latency.runs, RUNS), min(latency.warmup, WARMUP), min(len(data.x_test), SAMPLES)
    result = {"runtime": entry["runtime"], "runs": runs, "warmup": warmup, "samples": samples, "candidates": []}
    source, why = _source(final_model, memo)
    if source is None:
        result.update(note=f"No alternative was measured: {why}.", best=None, wall_s=0.0)
        return result
    x = to_layout(data.x_test[:samples], entry.get("layout", "nhwc"))
    y, ref = data.y_test[:samples], (reference[:samples] if reference is not None else None)
    settings = {"latency_cfg": {"warmup": warmup, "runs": runs, "batch": latency.batch}, "threads": latency.threads}

    def measure(path: Path) -> dict:
        from edgekit.evaluate import measure_file

        figures = measure_file(path, entry["runtime"], x, y, recipe.task, reference=ref, **settings)
        kept = {"bytes": figures["bytes"], "p50_ms": (figures.get("latency_ms") or {}).get("p50")}
        kept.update({k: figures[k] for k in ("accuracy", "mae", "agreement") if figures.get(k) is not None})
        return kept

    others = [p for p, plan in PLANS.items() if p != entry["precision"] and plan.alternative]
    candidates = []
    with ctx.progress.task(f"flag {entry['name']}: measure float32, {', '.join(others)}", len(others) + 2) as done:
        for precision in [FLOAT, *others]:
            try:
                candidates.append({"precision": precision,
                                   **measure(_exported(source, entry["format"], precision, memo, ctx))})
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                candidates.append({"precision": precision, "error": f"{type(exc).__name__}: {_short(exc)}"})
            done(1)
        try:
            shipped = measure(Path(ctx.workdir) / entry["name"])
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            shipped = {"error": f"{type(exc).__name__}: {_short(exc)}"}
        candidates.insert(1, {"precision": entry["precision"], "shipped": True, **shipped})
        done(1)
    result["candidates"] = with_ratios(candidates)
    result["best"] = best_alternative(result["candidates"], kinds)
    result["wall_s"] = round(time.perf_counter() - start, 3)
    return result


def with_ratios(candidates: list[dict]) -> list[dict]:
    """Each measured candidate with its p50 and bytes as ratios to the float32 candidate's."""
    base = next((c for c in candidates if c["precision"] == FLOAT and not c.get("shipped") and "error" not in c), None)
    out = []
    for c in candidates:
        if base is None or "error" in c:
            out.append(c)
            continue
        p50 = round(c["p50_ms"] / base["p50_ms"], 3) if c.get("p50_ms") and base.get("p50_ms") else None
        out.append({**c, "p50_ratio": p50, "bytes_ratio": round(c["bytes"] / base["bytes"], 3)})
    return out


def _exported(source, fmt_name: str, precision: str, memo: dict, ctx) -> Path:
    """The final model written as `fmt_name` at `precision` by the format's exporter, once per run."""
    files = memo.setdefault("files", {})
    key = (fmt_name, precision)
    if key in files:
        return files[key]
    if "directory" not in memo:
        memo["directory"] = tempfile.TemporaryDirectory(prefix="edgekit-flags-")
    fmt = get_format(fmt_name)
    recipe = ctx.recipe
    plan = None if precision == FLOAT else plan_for(precision)
    fmt.check_plan(source.framework, plan)
    directory = Path(memo["directory"].name)
    path = directory / f"{precision}{fmt.suffix}"
    options = ExportOptions(calibration=ctx.dataset.x_calib, sparse=recipe.export.sparse,
                            channels_last=bool(recipe.export.channels_last), threads=recipe.evaluate.latency.threads)
    fmt.export(replace(source, plan=plan), path, options, memo.setdefault(("written", fmt_name), {}))
    files[key] = path
    return path
