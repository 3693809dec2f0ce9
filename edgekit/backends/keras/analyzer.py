"""GPU-delegate compatibility of a .tflite file, as TensorFlow Lite's model analyzer reports it.

    gpu_compatibility("model.tflite")
    # {"compatible": True, "report": "=== model.tflite ===\n...", "warnings": []}

`tf.lite.experimental.Analyzer.analyze(model_path=..., gpu_compatibility=True)` prints its report
to stdout (Python `print`), so the report is captured with `contextlib.redirect_stdout`. The
analyzer writes one `GPU COMPATIBILITY WARNING: ...` line per op the GPU delegate cannot run plus a
summary line per subgraph, and "Your model looks compatible with GPU delegate ..." when it found
nothing. `compatible` is True only when that sentence is present and no warning line is.

Caveat found while building this: the TensorFlow 2.21 pip wheel prints "looks compatible" for every
model, even one containing a Flex (SELECT_TF_OPS) op that no GPU delegate runs: its native library
contains none of the checker's warning strings, so the check is not compiled in. `edgekit.formats.inspect`
therefore adds a note when the analyzer says "compatible" about a model with custom ops.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from edgekit.backends.keras.compat import tf

WARNING_MARK = "GPU COMPATIBILITY WARNING"
COMPATIBLE_MARK = "looks compatible with GPU delegate"


def parse_report(report: str) -> dict:
    """{"compatible", "warnings"} from the analyzer's text (the warning lines, without the prefix)."""
    warnings = [line.split(":", 1)[1].strip() if ":" in line else line.strip()
                for line in report.splitlines() if WARNING_MARK in line]
    return {"compatible": COMPATIBLE_MARK in report and not warnings, "warnings": warnings}


def gpu_compatibility(path: str | Path) -> dict:
    """Run TF Lite's analyzer with `gpu_compatibility=True` on `path` and interpret its report."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        tf.lite.experimental.Analyzer.analyze(model_path=str(path), gpu_compatibility=True)
    report = buffer.getvalue()
    result = parse_report(report)
    return {"compatible": result["compatible"], "report": report, "warnings": result["warnings"],
            "tensorflow": tf.__version__}
