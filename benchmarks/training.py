"""Training at scale (issue 14): throughput and accuracy of the same recipe on each compute.

`edgekit compress recipes/digits_torch_qat.yaml` (distill, prune, QAT; the Keras rows run the same
recipe body on the Keras teacher, with post-training int8 in place of QAT, which Keras cannot train
in mixed precision) runs as a fresh process for each compute: the CPU in float32 and
in mixed precision (bfloat16), two local workers (DDP), and, where a GPU is visible, the GPU in
float32 and mixed precision (float16). Each row gives the trained images per second (the samples
every worker trained in the distill, prune and QAT steps, from the report, over those steps' wall
time), the wall time of the whole process, and the accuracy of the exported int8 .onnx on ONNX
Runtime. Targets: mixed precision and two workers each keep within 1 point of float32 on one CPU
process (acceptance 1 and 2 of issue 14).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PYTHON, ROOT, check, md_table, pct, scratch, target, timed_run  # noqa: E402

RECIPE = ROOT / "recipes" / "digits_torch_qat.yaml"
TEACHERS = {"torch": "sample_models/digits_cnn_torch.pt2", "keras": "sample_models/digits_cnn.keras"}
# Keras QAT cannot train in mixed precision (TF-MOT's fake-quant ops take float32 only, and validation
# refuses it), so every Keras row ends in post-training int8 instead, to compare like with like
KERAS_STAGES = ("--set", "stages.2={quantize: {method: ptq, precision: int8}}",)
TRAINED = ("distill", "prune", "quantize")
QUICK = ("--set", "stages.0.distill.epochs=4")


def visible_gpus() -> int:
    """GPUs torch sees here (0 without a CUDA build or device)."""
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def configurations(quick: bool, gpus: int, keras_workers: bool) -> list[dict]:
    """(framework, device, precision, workers) rows this machine can run."""
    rows = [{"framework": "torch", "device": "cpu", "precision": "float32", "workers": 1},
            {"framework": "torch", "device": "cpu", "precision": "float32", "workers": 2}]
    if not quick:
        rows += [{"framework": "torch", "device": "cpu", "precision": "mixed", "workers": 1},
                 {"framework": "keras", "device": "cpu", "precision": "float32", "workers": 1},
                 {"framework": "keras", "device": "cpu", "precision": "mixed", "workers": 1}]
        if keras_workers:
            rows.append({"framework": "keras", "device": "cpu", "precision": "float32", "workers": 2})
    if gpus:
        rows += [{"framework": "torch", "device": "cuda", "precision": precision, "workers": 1}
                 for precision in ("float32", "mixed")]
    return rows


def _run(row: dict, base: Path, quick: bool) -> dict:
    name = f"{row['framework']}-{row['device']}-{row['precision']}-w{row['workers']}"
    out = base / name
    args = [PYTHON, "-m", "edgekit.cli", "compress", str(RECIPE), "--output", str(out), "--no-cache", "-q",
            "--set", f"teacher.path={TEACHERS[row['framework']]}", "--device", row["device"],
            "--precision", row["precision"], "--workers", str(row["workers"]), *(QUICK if quick else ()),
            *(KERAS_STAGES if row["framework"] == "keras" else ())]
    seconds, proc = timed_run(args, timeout=1800)
    check(proc, f"edgekit compress ({name})", ok=(0, 1))
    report = json.loads((out / "report.json").read_text())
    steps = [stage for stage in report["stages"] if stage["name"] in TRAINED and stage.get("compute")]
    samples = sum(sum(stage["compute"].get("samples", [0])) for stage in steps)
    trained_s = sum(stage["wall_s"] for stage in steps)
    model = next(a for a in report["artifacts"] if a["name"] == "model.onnx")
    return {**row, "wall_s": round(seconds, 2), "trained_s": round(trained_s, 2), "samples": samples,
            "images_per_s": round(samples / trained_s, 1) if trained_s and samples else None,
            "accuracy": model["accuracy"], "bytes": model["bytes"],
            "global_batch": steps[0]["compute"].get("global_batch"),
            "worker_batch": steps[0]["compute"].get("worker_batch"), "compute": report["compute"]}


def _keras_trains_on_workers() -> bool:
    from edgekit.recipe.support import engine_of

    return engine_of("keras") is not None


def run(quick: bool = False) -> dict:
    base = scratch() / "training"
    gpus = visible_gpus()
    rows = [_run(row, base, quick) for row in configurations(quick, gpus, _keras_trains_on_workers())]
    targets = []
    for framework in ("torch", "keras"):
        reference = next((r for r in rows if r["framework"] == framework and r["device"] == "cpu"
                          and r["precision"] == "float32" and r["workers"] == 1), None)
        for other in [r for r in rows if r["framework"] == framework and r["device"] == "cpu" and r is not reference]:
            if reference is None:
                continue
            gap = round(abs(other["accuracy"] - reference["accuracy"]), 4)
            what = "mixed precision" if other["precision"] == "mixed" else f"{other['workers']} workers"
            targets.append(target(f"{framework}_{what.replace(' ', '_')}_accuracy",
                                  f"{framework}: {what} within 1 point of float32 on one process (model.onnx)",
                                  gap, gap <= 0.01,
                                  f"{pct(reference['accuracy'])} → {pct(other['accuracy'])}"))
    table = md_table(["framework", "device", "precision", "workers", "batch (global / per worker)", "trained images/s",
                      "trained s", "wall s (process)", "model.onnx accuracy", "bytes"],
                     [[r["framework"], r["device"], r["precision"], r["workers"],
                       f"{r['global_batch']} / {r['worker_batch']}", r["images_per_s"], r["trained_s"], r["wall_s"],
                       pct(r["accuracy"]), r["bytes"]] for r in rows], "llllrrrrrr")
    notes = [f"{RECIPE.relative_to(ROOT)} (distill 20 epochs, prune 3, QAT 2{'; --quick: distill 4' if quick else ''}),"
             " fresh process each, no stage cache. Images/s: samples trained by all workers in those steps over "
             "their wall time (validation after each epoch included)."]
    if not gpus:
        notes.append("No GPU is visible here: the GPU rows (torch on cuda, float32 and mixed float16) run where "
                     "torch sees one.")
    return {"title": "Training: CPU, mixed precision, workers, GPU", "gpus": gpus, "rows": rows,
            "targets": targets, "table": table, "notes": notes}


if __name__ == "__main__":
    print(run("--quick" in sys.argv)["table"])
