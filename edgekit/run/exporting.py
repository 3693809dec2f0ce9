"""Export the teacher (as float baselines) and the final model to every format the recipe asks for.

Each format (`edgekit.formats.registry`) owns its export flow: the .tflite gets the quantization plan
from its converter, the .onnx is written in float and quantized by ONNX Runtime with the same
calibration samples, so both shipped files are quantized alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.artifact import Artifact
from edgekit.formats.base import ExportOptions
from edgekit.formats.registry import get_format


@dataclass(frozen=True)
class Export:
    role: str  # "baseline" (the teacher in float) | "final"
    fmt: str  # "tflite" | "onnx"
    path: Path
    precision: str  # float32 | int8 | dynamic | float16
    io: str  # type of the inputs and outputs of the file
    layout: str = "nhwc"  # layout of the file's image input: nhwc | nchw
    facts: dict = field(default_factory=dict)  # what the exporter reports of the file (quantization_choice)


def export_all(teacher: Artifact, final: Artifact, ctx) -> list[Export]:
    """baseline.<fmt> from the teacher (float) and model.<fmt> from the final artifact."""
    exports: list[Export] = []
    written: dict[str, dict] = {}  # per format: what its exporter remembers across the files of this run
    channels_last = bool(ctx.recipe.export.channels_last)
    options = ExportOptions(calibration=ctx.dataset.x_calib, sparse=ctx.recipe.export.sparse,
                            channels_last=channels_last, threads=ctx.recipe.evaluate.latency.threads)
    for role, stem, artifact in (("baseline", "baseline", teacher), ("final", "model", final)):
        precision = artifact.plan.precision if artifact.plan is not None else "float32"
        for name in ctx.recipe.export.formats:
            fmt = get_format(name)
            path = ctx.workdir / f"{stem}{fmt.suffix}"
            with ctx.stage(f"export {path.name}", f"{precision}, {fmt.name}") as record, \
                    ctx.progress.task(f"export {path.name} ({precision}, calibrate and convert)", 1) as done:
                facts: dict = {}
                plan = artifact.plan
                if plan is not None and plan.calibrated and not plan.quantization_aware:
                    facts["calibration"] = plan.calibration  # how its activation ranges were chosen
                ctx.warnings.extend(fmt.export(artifact, path, options, written.setdefault(fmt.name, {}), facts))
                done(1)
                record["metrics"]["bytes"] = path.stat().st_size
            layout = fmt.writer(artifact.framework).input_layout(channels_last)
            exports.append(Export(role, fmt.name, path, precision, fmt.io_of(artifact.plan), layout, facts))
    return exports
