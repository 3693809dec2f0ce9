"""Export the teacher (as float baselines) and the final model to every format the recipe asks for.

Writers are a table keyed by format. The .tflite gets the quantization plan from its converter; the
.onnx is exported in float by the backend and then quantized by ONNX Runtime with the same
calibration samples (edgekit.onnx_quantize), so both shipped files are quantized alike.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .artifact import Artifact
from .onnx_quantize import quantize_onnx


@dataclass(frozen=True)
class Export:
    role: str  # "baseline" (the teacher in float) | "final"
    fmt: str  # "tflite" | "onnx"
    path: Path
    precision: str  # float32 | int8 | dynamic | float16
    io: str  # type of the inputs and outputs of the file


def _write_tflite(artifact: Artifact, path: Path, ctx, float_onnx: dict) -> None:
    sparse = ctx.recipe.export.sparse and artifact.info.get("pruned") is not None
    ctx.backend.export(artifact.model, "tflite", path, artifact.quantization, ctx.dataset.x_calib, sparse=sparse)
    if not sparse:
        return
    problem = runs_on_litert(path, ctx.dataset.x_calib[:1], ctx.recipe.evaluate.latency.threads)
    if problem is None:
        return
    ctx.warnings.append(f"{path.name}: the sparse-encoded file does not run on LiteRT ({problem}); "
                        "it was written dense instead (export.sparse)")
    ctx.backend.export(artifact.model, "tflite", path, artifact.quantization, ctx.dataset.x_calib)


def runs_on_litert(path: Path, sample, threads: int) -> Optional[str]:
    """None when LiteRT (with XNNPACK) prepares and runs `path` on one sample, else the reason."""
    from .errors import EdgekitError
    from .runtimes import get_runtime

    try:
        get_runtime("litert").open(path, threads=threads).predict(sample)
    except EdgekitError as exc:
        return str(exc)
    return None


def _write_onnx(artifact: Artifact, path: Path, ctx, float_onnx: dict) -> None:
    if artifact.quantization is None or artifact.info.get("quantization_aware"):
        # float, or quantization-aware: the backend writes the trained quantization itself
        ctx.backend.export(artifact.model, "onnx", path, artifact.quantization, ctx.dataset.x_calib)
        if artifact.quantization is None:
            float_onnx[id(artifact.model)] = path
        return
    source: Optional[Path] = float_onnx.get(id(artifact.model))
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as tmp:
        if source is None:
            source = ctx.backend.export(artifact.model, "onnx", Path(tmp) / "float.onnx")
        quantize_onnx(source, path, artifact.quantization, ctx.dataset.x_calib)


WRITERS: dict[str, Callable[[Artifact, Path, Any, dict], None]] = {
    "tflite": _write_tflite,
    "onnx": _write_onnx,
}


def _io_of(artifact: Artifact, fmt: str) -> str:
    plan = artifact.quantization
    if plan is None or fmt == "onnx":
        return "float32"
    return plan.io


def export_all(teacher: Artifact, final: Artifact, ctx) -> list[Export]:
    """baseline.<fmt> from the teacher (float) and model.<fmt> from the final artifact."""
    exports: list[Export] = []
    float_onnx: dict[int, Path] = {}
    for role, stem, artifact in (("baseline", "baseline", teacher), ("final", "model", final)):
        precision = artifact.quantization.precision if artifact.quantization is not None else "float32"
        for fmt in ctx.recipe.export.formats:
            path = ctx.workdir / f"{stem}.{fmt}"
            with ctx.stage(f"export {path.name}", f"{precision}, {fmt}") as record:
                WRITERS[fmt](artifact, path, ctx, float_onnx)
                record["metrics"]["bytes"] = path.stat().st_size
            exports.append(Export(role, fmt, path, precision, _io_of(artifact, fmt)))
    return exports
