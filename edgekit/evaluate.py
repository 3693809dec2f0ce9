"""Measure one exported file on its deployment runtime: size, params, accuracy / MAE, agreement, latency.

    figures = measure_file("runs/x/model.tflite", "litert", x_test, y_test, "classification",
                           reference=teacher_scores, latency_cfg={"warmup": 10, "runs": 100, "batch": 1})
    figures["accuracy"], figures["agreement"], figures["latency_ms"]["p50"], figures["bytes"]

Every number comes from running the file itself (DESIGN.md: measured, never simulated). The metric
functions are pure numpy so they can be tested and reused (e.g. on the teacher's own scores) without
any runtime; runtimes are imported only inside `measure_file`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np


def _labels(y_true: np.ndarray) -> np.ndarray:
    """Class indices from integer labels, or from one-hot / score rows."""
    y = np.asarray(y_true)
    return y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y)).astype(np.int64)


def classification_metrics(pred_scores, y_true, reference_scores=None) -> dict:
    """Top-1 accuracy against `y_true`, and agreement: the fraction of samples whose top-1 class equals
    the reference's (the teacher's) top-1 class; None without a reference.

    >>> classification_metrics(np.array([[0.1, 0.9], [0.8, 0.2]]), [1, 1], np.array([[0, 1], [0, 1]]))
    {'accuracy': 0.5, 'agreement': 0.5}
    """
    pred = np.asarray(pred_scores).argmax(axis=-1).reshape(-1)
    labels = _labels(y_true)
    if len(pred) != len(labels):
        raise ValueError(f"{len(pred)} predictions for {len(labels)} labels")
    accuracy = float(np.mean(pred == labels)) if len(pred) else float("nan")
    agreement = None
    if reference_scores is not None:
        ref = np.asarray(reference_scores).argmax(axis=-1).reshape(-1)
        if len(ref) != len(pred):
            raise ValueError(f"{len(pred)} predictions for {len(ref)} reference outputs")
        agreement = float(np.mean(pred == ref)) if len(pred) else float("nan")
    return {"accuracy": accuracy, "agreement": agreement}


def regression_metrics(pred, y_true, reference=None) -> dict:
    """Mean absolute error against `y_true`; with a reference also `mae_vs_reference`, the mean absolute
    difference to the teacher's outputs. `agreement` is None: it is a classification notion.

    >>> regression_metrics(np.array([1.0, 2.0]), np.array([1.5, 2.0]), reference=np.array([1.0, 3.0]))
    {'mae': 0.25, 'agreement': None, 'mae_vs_reference': 0.5}
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.float64).reshape(p.shape) if np.size(y_true) == p.size else None
    if t is None:
        raise ValueError(f"predictions of shape {p.shape} do not match targets of shape {np.shape(y_true)}")
    result = {"mae": float(np.mean(np.abs(p - t))), "agreement": None}
    if reference is not None:
        r = np.asarray(reference, dtype=np.float64)
        if r.size != p.size:
            raise ValueError(f"predictions of shape {p.shape} do not match reference of shape {r.shape}")
        result["mae_vs_reference"] = float(np.mean(np.abs(p - r.reshape(p.shape))))
    return result


#: task (recipe `task:`) -> metric function
METRICS: dict[str, Callable[..., dict]] = {
    "classification": classification_metrics,
    "regression": regression_metrics,
}


def measure_file(path, runtime_name: str, x: np.ndarray, y: np.ndarray, task: str, reference=None,
                 latency_cfg: Optional[dict] = None, threads: int = 1,
                 progress: Optional[Callable[[int, int], None]] = None, batch_size: int = 64,
                 latency_progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Open `path` once on `runtime_name`, predict `x` in batches, score against `y`, time it.

    Returns {"runtime", "runtime_version", "format", "bytes", "gzip_bytes", "files", "params",
    <metrics of the task>, "latency_ms": {...} | None, "io": {"inputs": [...], "outputs": [...]},
    "_predictions": float32 array} — the caller pops "_predictions" before writing the report.
    `latency_cfg` takes keys warmup (10), runs (100), batch (1); None skips timing.
    """
    from edgekit.errors import RecipeError
    from edgekit.formats.files import file_size, param_count
    from edgekit.runtimes import get_runtime

    if task not in METRICS:
        raise RecipeError(f"unknown task '{task}' (known: {', '.join(METRICS)})")
    path = Path(path)
    runtime = get_runtime(runtime_name)
    size = file_size(path)
    session = runtime.open(path, threads=threads)
    try:
        predictions = session.predict(x, batch_size=batch_size, progress=progress)
        figures = {
            "runtime": runtime.name,
            "runtime_version": runtime.version(),
            "format": runtime.file_format,
            "bytes": size["bytes"],
            "gzip_bytes": size["gzip_bytes"],
            "files": size["files"],
            "params": param_count(path),
        }
        figures.update(METRICS[task](predictions, y, reference))
        figures.update(session.facts())  # what only this runtime measures (TFLite Micro's arena bytes)
        latency = None
        if latency_cfg is not None:
            latency = session.latency(warmup=int(latency_cfg.get("warmup", 10)),
                                      runs=int(latency_cfg.get("runs", 100)),
                                      batch=int(latency_cfg.get("batch", 1)), progress=latency_progress)
        figures["latency_ms"] = latency
        figures["io"] = {"inputs": [t.to_dict() for t in session.inputs],
                         "outputs": [t.to_dict() for t in session.outputs]}
        figures["_predictions"] = predictions
        return figures
    finally:
        session.close()
