"""What a report says, read from a report dict: the quality metric, the final file, the latency settings.

report.md, report.html and the plots ask the same questions of report.json; they ask them here so
the pages cannot disagree about which artifact is final or which metric is shown.
"""

from __future__ import annotations

_QUALITY_LABELS = {"accuracy": "accuracy", "mae": "MAE"}


def quality_key(report: dict) -> str:
    """The artifact field that holds the quality figure: `accuracy` (classification) or `mae` (regression)."""
    return "accuracy" if report.get("metric", "accuracy") == "accuracy" else "mae"


def quality_label(report: dict) -> str:
    """The quality column's heading: `accuracy` or `MAE`."""
    return _QUALITY_LABELS[quality_key(report)]


def final_artifact(report: dict, fmt: str) -> dict | None:
    """The final (shipped) artifact of format `fmt`, or None when the run made none."""
    return next((a for a in report.get("artifacts", []) if a.get("role") == "final" and a.get("format") == fmt), None)


def final_artifacts_with_layers(report: dict) -> list[dict]:
    """The final artifacts whose per-layer weights were read back from the file."""
    return [a for a in report.get("artifacts", []) if a.get("role") == "final" and a.get("layers")]


def latency_settings(report: dict) -> dict:
    """How latency was measured (batch, threads, runs, warmup): the first measured artifact's settings, or {}."""
    return next((a["latency_ms"] for a in report.get("artifacts", []) if a.get("latency_ms")), {})


def compute_sentence(report: dict) -> str:
    """Where the run's training steps ran: device and precision (`compute` of report.json), or ""
    for reports written before it existed."""
    compute = report.get("compute") or {}
    if not compute:
        return ""
    device = compute.get("device", "?")
    where = "the CPU" if device == "cpu" else f"the GPU {device}" if str(device).startswith("cuda") else f"device {device}"
    if compute.get("precision") == "mixed":
        dtype = compute.get("compute_dtype")
        how = f"mixed precision ({dtype} compute, float32 weights)" if dtype else "mixed precision"
    else:
        how = "float32"
    return (f"Training ran on {where} in {how}; the exported files were written from the float32 model "
            "and measured on the CPU runtimes.")
