"""Export the teacher (as float baselines) and the final model to every format the recipe asks for.

Writers are a table keyed by format. The .tflite gets the quantization plan from its converter; the
.onnx is exported in float by the backend and then quantized by ONNX Runtime with the same
calibration samples (edgekit.formats.onnx.quantize), so both shipped files are quantized alike.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edgekit.artifact import Artifact
from edgekit.layouts import to_layout
from edgekit.formats.onnx.quantize import quantize_onnx


@dataclass(frozen=True)
class Export:
    role: str  # "baseline" (the teacher in float) | "final"
    fmt: str  # "tflite" | "onnx"
    path: Path
    precision: str  # float32 | int8 | dynamic | float16
    io: str  # type of the inputs and outputs of the file
    layout: str = "nhwc"  # layout of the file's image input: nhwc | nchw


def _write_tflite(artifact: Artifact, path: Path, ctx, float_onnx: dict) -> None:
    sparse = ctx.recipe.export.sparse and artifact.pruned is not None
    ctx.backend.export(artifact, "tflite", path, ctx.dataset.x_calib, channels_last=bool(ctx.recipe.export.channels_last))
    if not sparse:
        return
    with tempfile.TemporaryDirectory(prefix="edgekit-sparse-") as tmp:
        candidate = Path(tmp) / path.name
        ctx.backend.export(artifact, "tflite", candidate, ctx.dataset.x_calib, sparse=True,
                           channels_last=bool(ctx.recipe.export.channels_last))
        samples = to_layout(ctx.dataset.x_calib[:64], ctx.backend.input_layout("tflite", bool(ctx.recipe.export.channels_last)))
        problem = sparse_problem(candidate, path, samples, ctx.recipe.evaluate.latency.threads)
        if problem is None:
            shutil.copyfile(candidate, path)
            return
    ctx.warnings.append(f"{path.name}: written dense, because the sparse-encoded file {problem} "
                        "(export.sparse)")


def sparse_problem(sparse: Path, dense: Path, samples, threads: int) -> Optional[str]:
    """Why LiteRT (with XNNPACK) cannot ship the sparse file, or None when it runs it and gives the
    dense file's outputs. Both checks matter: some sparse encodings fail to prepare, others run and
    silently compute something else (seen with LiteRT 2.3 on block-sparse dynamic-range and float16)."""
    from edgekit.errors import EdgekitError
    from edgekit.runtimes import get_runtime

    runtime = get_runtime("litert")
    try:
        got = runtime.open(sparse, threads=threads).predict(samples)
    except EdgekitError as exc:
        return f"does not run on LiteRT ({str(exc).replace(str(sparse), sparse.name).strip()[:200]})"
    expected = runtime.open(dense, threads=threads).predict(samples)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-3 * (np.abs(expected).max() + 1e-6)):
        worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
        return f"gives different outputs on LiteRT than the dense file (largest difference {worst:.3g})"
    return None


def _write_onnx(artifact: Artifact, path: Path, ctx, float_onnx: dict) -> None:
    """Float models export as they are; quantized ones are quantized by ONNX Runtime from the float
    file, except quantization-aware Keras models, whose backend writes the trained int8 itself.
    A backend whose QAT model cannot go to ONNX directly leaves its fine-tuned float weights in
    `artifact.qat.float_model`, which ONNX Runtime then quantizes with the calibration samples."""
    plan = artifact.plan
    float_model = artifact.qat.float_model if artifact.qat is not None else None
    if plan is None or (artifact.qat is not None and float_model is None):
        ctx.backend.export(artifact, "onnx", path, ctx.dataset.x_calib)
        if plan is None:
            float_onnx[id(artifact.model)] = path
        return
    model = float_model if float_model is not None else artifact.model
    source: Optional[Path] = float_onnx.get(id(model))
    calibration = to_layout(ctx.dataset.x_calib, ctx.backend.input_layout("onnx", False))
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as tmp:
        if source is None:
            source = ctx.backend.export(Artifact(artifact.framework, model), "onnx", Path(tmp) / "float.onnx",
                                        ctx.dataset.x_calib)
        quantize_onnx(source, path, plan, calibration)


WRITERS: dict[str, Callable[[Artifact, Path, Any, dict], None]] = {
    "tflite": _write_tflite,
    "onnx": _write_onnx,
}


def _io_of(artifact: Artifact, fmt: str) -> str:
    plan = artifact.plan
    if plan is None or fmt == "onnx":
        return "float32"
    return plan.io


def export_all(teacher: Artifact, final: Artifact, ctx) -> list[Export]:
    """baseline.<fmt> from the teacher (float) and model.<fmt> from the final artifact."""
    exports: list[Export] = []
    float_onnx: dict[int, Path] = {}
    for role, stem, artifact in (("baseline", "baseline", teacher), ("final", "model", final)):
        precision = artifact.plan.precision if artifact.plan is not None else "float32"
        for fmt in ctx.recipe.export.formats:
            path = ctx.workdir / f"{stem}.{fmt}"
            with ctx.stage(f"export {path.name}", f"{precision}, {fmt}") as record, \
                    ctx.progress.task(f"export {path.name} ({precision}, calibrate and convert)", 1) as done:
                WRITERS[fmt](artifact, path, ctx, float_onnx)
                done(1)
                record["metrics"]["bytes"] = path.stat().st_size
            layout = ctx.backend.input_layout(fmt, bool(ctx.recipe.export.channels_last))
            exports.append(Export(role, fmt, path, precision, _io_of(artifact, fmt), layout))
    return exports
