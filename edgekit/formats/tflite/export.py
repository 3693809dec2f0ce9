"""The .tflite export flow: the framework's writer realizes the plan in the converter, and a sparse
encoding (`export.sparse`, pruned models) ships only when LiteRT runs it and gives the same outputs.
An int8 or int16x8 file gets short tensor names (`edgekit.formats.tflite.compact`), as the ONNX flow does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.artifact import Artifact
from edgekit.formats.base import ExportOptions
from edgekit.formats.tflite import FORMAT
from edgekit.formats.tflite.compact import compact
from edgekit.layouts import to_layout


def export(artifact: Artifact, path: Path, options: ExportOptions, written: dict,
           facts: dict | None = None) -> list[str]:
    """Write `path`; the warnings say why a sparse file asked for was written dense. The converter
    makes no measured choice, so `facts` is left as it is."""
    writer = FORMAT.writer(artifact.framework)
    write = writer.load()
    def written_as_shipped(target: Path, sparse: bool = False) -> None:
        write(artifact, target, options.calibration, sparse=sparse, channels_last=options.channels_last)
        if artifact.plan is not None and artifact.plan.calibrated:
            compact(target)

    written_as_shipped(path)
    if not (options.sparse and artifact.pruned is not None):
        return []
    with tempfile.TemporaryDirectory(prefix="edgekit-sparse-") as tmp:
        candidate = Path(tmp) / path.name
        written_as_shipped(candidate, sparse=True)
        samples = to_layout(options.calibration[:64], writer.input_layout(options.channels_last))
        problem = sparse_problem(candidate, path, samples, options.threads)
        if problem is None:
            shutil.copyfile(candidate, path)
            return []
    return [f"{path.name}: written dense, because the sparse-encoded file {problem} (export.sparse)"]


def sparse_problem(sparse: Path, dense: Path, samples, threads: int) -> Optional[str]:
    """Why LiteRT (with XNNPACK) cannot ship the sparse file, or None when it runs it and gives the
    dense file's outputs. Both checks matter: some sparse encodings fail to prepare, others run and
    silently compute something else (seen with LiteRT 2.3 on block-sparse dynamic-range and float16)."""
    from edgekit.errors import EdgekitError
    from edgekit.runtimes import get_runtime

    runtime = get_runtime(FORMAT.default_runtime)
    try:
        got = runtime.open(sparse, threads=threads).predict(samples)
    except EdgekitError as exc:
        return f"does not run on LiteRT ({str(exc).replace(str(sparse), sparse.name).strip()[:200]})"
    expected = runtime.open(dense, threads=threads).predict(samples)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-3 * (np.abs(expected).max() + 1e-6)):
        worst = float(np.nanmax(np.abs(got - expected))) if got.shape == expected.shape else float("nan")
        return f"gives different outputs on LiteRT than the dense file (largest difference {worst:.3g})"
    return None
