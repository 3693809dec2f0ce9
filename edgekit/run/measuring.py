"""Measure the teacher in its framework and every exported file on its runtimes, on one test set.

The teacher's quality on the validation split is recorded too (`validation`), and, for the trials
of `edgekit search` (`RunContext.measure_validation`), each file's: trials are compared on it.

The teacher's outputs are the reference for agreement. A file is measured on every runtime of its
format (`edgekit.formats.registry`) that `evaluate.runtimes` names, one report entry each; a file
none of whose runtimes is named still gets its size and parameter count, but no accuracy or latency.
"""

from __future__ import annotations

from edgekit.evaluate import classification_metrics, measure_file, regression_metrics
from edgekit.formats.files import file_size, is_sparse_encoded, param_count, weight_sparsity
from edgekit.formats.registry import get_format
from edgekit.layouts import to_layout
from edgekit.progress import to_absolute

METRICS = {"classification": classification_metrics, "regression": regression_metrics}


def measure_teacher(teacher, ctx) -> tuple[dict, "object"]:
    """The in-framework teacher on the test set: its figures and its outputs (the reference)."""
    data, backend = ctx.dataset, ctx.backend
    with ctx.stage("evaluate teacher", f"in {backend.framework}, {len(data.x_test)} samples") as record:
        outputs = backend.predict(teacher.model, data.x_test)
        metrics = METRICS[ctx.recipe.task](outputs, data.y_test, outputs)
        record["metrics"].update({k: v for k, v in metrics.items() if v is not None})
        validation = None
        if len(data.x_val):
            validation = quality_figures(METRICS[ctx.recipe.task](backend.predict(teacher.model, data.x_val), data.y_val))
    entry = {
        "name": "teacher", "role": "teacher", "format": backend.framework, "runtime": backend.framework,
        "precision": "float32", "params": backend.describe(teacher.model)["params"],
        "bytes": None, "gzip_bytes": None, "latency_ms": None, **metrics, "validation": validation,
    }
    return entry, outputs


def quality_figures(metrics: dict) -> dict:
    """The accuracy or MAE of a task's metrics (whichever the task has)."""
    return {k: metrics[k] for k in ("accuracy", "mae") if metrics.get(k) is not None}


def measure_exports(exports, reference, ctx) -> list[dict]:
    entries = []
    for export in exports:
        fmt = get_format(export.fmt)
        runtimes = [runtime for runtime in fmt.runtimes if runtime in ctx.recipe.evaluate.runtimes]
        base = {"name": export.path.name, "role": export.role, "format": export.fmt,
                "runtime": runtimes[0] if runtimes else fmt.default_runtime,
                "precision": export.precision, "io_type": export.io, "layout": export.layout,
                **export.facts}  # what the exporter measured of the file (the .onnx int8 quantization_choice)
        if not runtimes:
            entries.append({**base, **file_size(export.path), "params": param_count(export.path),
                            "runtime": None, "latency_ms": None, **_sparsity(export.path)})
        for runtime in runtimes:
            entries.append({**base, "runtime": runtime, **_measure(export, runtime, reference, ctx),
                            **_sparsity(export.path)})
    return entries


def _measure(export, runtime: str, reference, ctx) -> dict:
    """The file's figures on `runtime`: size, accuracy / MAE, agreement with the teacher, latency."""
    data, recipe = ctx.dataset, ctx.recipe
    latency = recipe.evaluate.latency
    name = export.path.name
    with ctx.stage(f"evaluate {name}", f"on {runtime}, {len(data.x_test)} samples") as record:
        with ctx.progress.task(f"evaluate {name}", len(data.x_test)) as advance, \
                ctx.progress.task(f"latency {name}", latency.runs) as timed:
            figures = measure_file(
                export.path, runtime, to_layout(data.x_test, export.layout), data.y_test, recipe.task,
                reference=reference,
                latency_cfg={"warmup": latency.warmup, "runs": latency.runs, "batch": latency.batch},
                threads=latency.threads, progress=to_absolute(advance), latency_progress=to_absolute(timed),
            )
        figures.pop("_predictions", None)
        record["metrics"].update({k: figures.get(k) for k in ("accuracy", "mae", "agreement") if figures.get(k) is not None})
        if ctx.measure_validation and len(data.x_val):  # a search trial: compared on the validation split
            found = measure_file(export.path, runtime, to_layout(data.x_val, export.layout), data.y_val,
                                 recipe.task, threads=latency.threads)
            figures["validation"] = quality_figures(found)
    return figures


def _sparsity(path) -> dict:
    """Zero weights per layer, read back from the exported file itself."""
    found = weight_sparsity(path)
    layers = [{k: layer[k] for k in ("name", "shape", "elements", "zeros", "sparsity", "encoding")}
              for layer in found["layers"]]
    return {"weight_sparsity": found["sparsity"], "sparse_encoded": is_sparse_encoded(path), "layers": layers}
