"""Compression: what each quantization / compression recipe gives, measured by running the exported files.

Two entry points:

- `run(quick)` (used by benchmarks/run_all.py): the sample teacher in float32 against PTQ int8, PTQ
  dynamic, PTQ float16, QAT int8 and the full distill + prune + QAT recipe (digits_full): bytes,
  gzip bytes, compression against the teacher's float .tflite, accuracy and agreement measured on
  LiteRT / ONNX Runtime, and p50 latency at 1 and 2 threads (each file opened with
  `get_runtime(...).open(path, threads)`, `latency(warmup=20, runs=200)`, median of 3 repetitions).
  The digits models run in ~5-15 µs, too small to show what int8 buys, so the same is measured on
  zoo conv models (cnn_small, mobilenet_v1, width 1.0) trained on synthetic 32x32x3 images: target
  int8 p50 ≤ 0.6 × float p50 on LiteRT, 1 thread. Full runs add the Keras QAT .onnx against the PTQ
  .onnx of the same teacher on ONNX Runtime (target QAT p50 ≤ 1.2 × PTQ p50, timed back to back), the
  torch sample teacher as float and int8 ExecuTorch .pte on ExecuTorch (`executorch_row`: bytes ratio,
  target ≤ 0.35× within 1 point of the teacher, p50 at 1 and 2 threads) and the example-recipes table below.
- the command line (kept for `tests/e2e/test_recipes.py::test_compression_benchmark_smoke`): runs
  each example recipe through the same pipeline as `edgekit compress`, prints a table and writes
  benchmarks/results/compression.json / .md. Every figure is read from the run's report.json.

    .venv/bin/python benchmarks/compression.py [--recipes quickstart digits_full ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from edgekit.environment import describe_environment  # noqa: E402
from edgekit.run.pipeline import run as run_pipeline  # noqa: E402
from edgekit.recipe import load_recipe  # noqa: E402

RECIPES = ("quickstart", "digits_full", "digits_cluster", "digits_channels", "digits_torch")


def _artifact(report: dict, name: str) -> dict:
    return next(a for a in report["artifacts"] if a["name"] == name)


def measure(recipe_name: str, workdir: Path) -> dict:
    recipe = load_recipe(ROOT / "recipes" / f"{recipe_name}.yaml")
    start = time.perf_counter()
    result = run_pipeline(recipe, workdir / recipe_name)
    return recipe_row(recipe_name, result.report, time.perf_counter() - start)


def recipe_row(recipe_name: str, report: dict, wall: float) -> dict:
    """One row of the example-recipes table, from a run's report."""
    teacher, baseline, final = (_artifact(report, n) for n in ("teacher", "baseline.tflite", "model.tflite"))
    row = {
        "recipe": recipe_name,
        "stages": " → ".join(s["name"] for s in report["stages"]
                             if not s["name"].startswith(("teacher", "export", "evaluate"))),
        "teacher_params": teacher["params"],
        "final_params": final["params"],
        "teacher_accuracy": teacher["accuracy"],
        "final_tflite_accuracy": final["accuracy"],
        "final_tflite_bytes": final["bytes"],
        "final_tflite_gzip_bytes": final["gzip_bytes"],
        "baseline_tflite_bytes": baseline["bytes"],
        "baseline_tflite_gzip_bytes": baseline["gzip_bytes"],
        "raw_ratio": round(final["bytes"] / baseline["bytes"], 4),
        "gzip_compression": round(baseline["gzip_bytes"] / final["gzip_bytes"], 2),
        "weight_sparsity": final.get("weight_sparsity"),
        "wall_s": round(wall, 1),
    }
    if any(a["name"] == "model.onnx" for a in report["artifacts"]):
        onnx = _artifact(report, "model.onnx")
        row.update(final_onnx_accuracy=onnx["accuracy"], final_onnx_bytes=onnx["bytes"])
    return row


def table(rows: list[dict]) -> str:
    lines = ["| recipe | stages | params | model.tflite bytes | gzip bytes | raw vs float | gzip compression "
             "| accuracy (LiteRT) | teacher | wall s |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['stages']} | {r['final_params']:,} | {r['final_tflite_bytes']:,} | "
                     f"{r['final_tflite_gzip_bytes']:,} | {r['raw_ratio']:.3f}× | {r['gzip_compression']:.1f}× | "
                     f"{100 * r['final_tflite_accuracy']:.2f}% | {100 * r['teacher_accuracy']:.2f}% | {r['wall_s']} |")
    return "\n".join(lines)


# ---- run_all section: precisions side by side, and int8 speed on a conv model --------------------

QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
FAST_EVAL = ("evaluate.latency.runs=1", "evaluate.latency.warmup=0")  # latency is timed here instead
#: label -> (recipe, overrides, which file pair: "baseline" (the teacher in float) or "model")
VARIANTS = {
    "teacher float32": ("quickstart", (), "baseline"),
    "PTQ int8": ("quickstart", (), "model"),
    "PTQ dynamic": ("quickstart", ("stages.0.quantize.precision=dynamic", "stages.0.quantize.io=float32"), "model"),
    "PTQ float16": ("quickstart", ("stages.0.quantize.precision=float16", "stages.0.quantize.io=float32"), "model"),
    "QAT int8": ("quickstart", ("stages.0.quantize.method=qat",), "model"),
    "distill + prune + QAT int8 (digits_full)": ("digits_full", (), "model"),
}
QUICK_VARIANTS = ("teacher float32", "PTQ int8", "PTQ float16")
FORMATS = (("tflite", "litert", "LiteRT"), ("onnx", "onnxruntime", "ONNX Runtime"))
SPEEDUP_TARGET = 0.6


def _variant_run(recipe: str, overrides: tuple[str, ...]):
    import common

    if recipe == "quickstart" and not overrides:
        return common.quickstart_run()
    return common.run_recipe(ROOT / "recipes" / f"{recipe}.yaml", (*overrides, *FAST_EVAL),
                             key=f"{recipe}|{'|'.join(overrides)}")


def _latencies(path: Path, runtime: str, quick: bool) -> dict:
    import common

    reps, runs, warmup = (1, 50, 5) if quick else (3, 200, 20)
    return {threads: common.p50(path, runtime, threads, reps=reps, warmup=warmup, runs=runs) for threads in (1, 2)}


def precision_rows(quick: bool) -> list[dict]:
    """One row per (variant, file): sizes, quality on the runtime, p50 at 1 and 2 threads."""
    rows = []
    reference = None
    for label, (recipe, overrides, which) in VARIANTS.items():
        if quick and label not in QUICK_VARIANTS:
            continue
        report, run_dir, wall = _variant_run(recipe, overrides)
        if reference is None:
            reference = _artifact(report, "baseline.tflite")
        for fmt, runtime, runtime_label in FORMATS:
            name = f"{which}.{fmt}"
            entry = _artifact(report, name)
            latency = _latencies(run_dir / name, runtime, quick)
            rows.append({
                "variant": label, "recipe": recipe, "overrides": list(overrides), "file": name,
                "runtime": runtime_label, "precision": entry["precision"], "params": entry["params"],
                "bytes": entry["bytes"], "gzip_bytes": entry["gzip_bytes"],
                "compression_vs_float_tflite": round(reference["bytes"] / entry["bytes"], 3),
                "gzip_compression_vs_float_tflite": round(reference["gzip_bytes"] / entry["gzip_bytes"], 3),
                "accuracy": entry["accuracy"], "agreement": entry["agreement"],
                "weight_sparsity": entry.get("weight_sparsity"),
                "p50_ms_1_thread": latency[1]["p50_ms"], "p50_ms_2_threads": latency[2]["p50_ms"],
                "p50_reps_ms": {str(k): v["p50_reps_ms"] for k, v in latency.items()},
            })
    return rows


def conv32_rows(quick: bool) -> list[dict]:
    """Float vs int8 of zoo conv models on synthetic 32x32x3 images: the speed int8 buys on LiteRT."""
    import common

    rows = []
    for arch in (("cnn_small",) if quick else tuple(common.CONV32_ARCHS)):
        report, run_dir, wall = common.conv32_run(arch, quick)
        for fmt, runtime, runtime_label in FORMATS:
            pair = {}
            for which in ("baseline", "model"):
                entry = _artifact(report, f"{which}.{fmt}")
                pair[which] = {"bytes": entry["bytes"], "accuracy": entry["accuracy"],
                               "agreement": entry["agreement"], "precision": entry["precision"],
                               "latency": _latencies(run_dir / f"{which}.{fmt}", runtime, quick)}
            f1, q1 = pair["baseline"]["latency"][1]["p50_ms"], pair["model"]["latency"][1]["p50_ms"]
            f2, q2 = pair["baseline"]["latency"][2]["p50_ms"], pair["model"]["latency"][2]["p50_ms"]
            rows.append({
                "model": f"{arch} (width 1.0)", "arch": arch, "runtime": runtime_label, "file_format": fmt,
                "params": _artifact(report, "teacher")["params"],
                "float_bytes": pair["baseline"]["bytes"], "int8_bytes": pair["model"]["bytes"],
                "float_accuracy": pair["baseline"]["accuracy"], "int8_accuracy": pair["model"]["accuracy"],
                "int8_agreement": pair["model"]["agreement"],
                "float_p50_ms_1_thread": f1, "int8_p50_ms_1_thread": q1,
                "float_p50_ms_2_threads": f2, "int8_p50_ms_2_threads": q2,
                "int8_over_float_1_thread": round(q1 / f1, 3), "int8_over_float_2_threads": round(q2 / f2, 3),
                "p50_reps_ms": {w: {str(k): v["p50_reps_ms"] for k, v in pair[w]["latency"].items()} for w in pair},
                "run_dir": str(run_dir),
            })
    return rows


QAT_ONNX_TARGET = 1.2
QAT_ONNX_ROUNDS = 7


def qat_onnx_row() -> dict:
    """The Keras QAT .onnx against the PTQ .onnx of the same sample teacher (quickstart) on ONNX Runtime,
    1 thread: p50 of each file timed back to back in alternating rounds (the ratio is the median of the
    rounds' ratios, steadier on a busy machine than a ratio of medians taken apart), and what
    `edgekit inspect` reads from each (the ops ORT's optimized graph leaves in float)."""
    from statistics import median

    import common

    from edgekit.formats.inspect import inspect_model

    files = {label: _variant_run(*VARIANTS[label][:2])[1] / "model.onnx" for label in ("PTQ int8", "QAT int8")}
    rounds: dict = {label: [] for label in files}
    for _ in range(QAT_ONNX_ROUNDS):
        for label, path in files.items():
            rounds[label].append(common.p50(path, "onnxruntime", 1, reps=1, warmup=20, runs=200)["p50_ms"])
    ratios = [q / p for q, p in zip(rounds["QAT int8"], rounds["PTQ int8"])]
    row = {"ratio": round(median(ratios), 3), "ratios": [round(r, 3) for r in ratios], "files": {}}
    for label, path in files.items():
        quantization = inspect_model(path)["quantization"]
        row["files"][label] = {"p50_ms_1_thread": median(rounds[label]), "p50_rounds_ms": rounds[label],
                               "bytes": path.stat().st_size, "quantization": quantization["kind"],
                               "float_ops": sorted({op["op"] for op in quantization["float_ops"]})}
    return row


def _qat_onnx_table(row: dict) -> str:
    from common import fmt_ms, md_table

    body = [[label, f"{f['bytes']:,}", f["quantization"], ", ".join(f["float_ops"]) or "none",
             fmt_ms(f["p50_ms_1_thread"])] for label, f in row["files"].items()]
    met = "met" if row["ratio"] <= QAT_ONNX_TARGET else "missed"
    return (md_table(["model.onnx", "bytes", "quantization (inspect)", "float ops on ORT", "p50 ms 1 thr"], body,
                     "lrllr")
            + f"\n\nQAT .onnx p50 / PTQ .onnx p50: {row['ratio']:.2f} (median of {len(row['ratios'])} "
              f"back-to-back rounds; target ≤ {QAT_ONNX_TARGET}: {met})")


def _precision_table(rows: list[dict]) -> str:
    from common import fmt_ms, md_table, pct

    body = [[r["variant"], r["file"], r["runtime"], r["precision"], f"{r['bytes']:,}", f"{r['gzip_bytes']:,}",
             f"{r['compression_vs_float_tflite']:.2f}×", f"{r['gzip_compression_vs_float_tflite']:.2f}×",
             pct(r["accuracy"]), pct(r["agreement"], 1), fmt_ms(r["p50_ms_1_thread"]), fmt_ms(r["p50_ms_2_threads"])]
            for r in rows]
    return md_table(["variant", "file", "runtime", "precision", "bytes", "gzip bytes", "vs float .tflite",
                     "gzip vs float .tflite gzip", "accuracy", "agreement", "p50 ms 1 thr", "p50 ms 2 thr"],
                    body, "llll" + "r" * 8)


def _conv32_table(rows: list[dict]) -> str:
    from common import fmt_ms, md_table, pct

    body = [[r["model"], r["runtime"], f"{r['params']:,}", f"{r['float_bytes']:,} → {r['int8_bytes']:,}",
             f"{pct(r['float_accuracy'], 1)} → {pct(r['int8_accuracy'], 1)}", pct(r["int8_agreement"], 1),
             fmt_ms(r["float_p50_ms_1_thread"]), fmt_ms(r["int8_p50_ms_1_thread"]), f"{r['int8_over_float_1_thread']:.2f}",
             fmt_ms(r["float_p50_ms_2_threads"]), fmt_ms(r["int8_p50_ms_2_threads"]),
             f"{r['int8_over_float_2_threads']:.2f}"] for r in rows]
    return md_table(["model (32×32×3 input)", "runtime", "params", "bytes float → int8", "accuracy float → int8",
                     "int8 agreement", "float p50 ms 1 thr", "int8 p50 ms 1 thr", "int8/float 1 thr",
                     "float p50 ms 2 thr", "int8 p50 ms 2 thr", "int8/float 2 thr"], body, "ll" + "r" * 10)


#: the torch sample teacher quantized alone to an ExecuTorch .pte (quickstart with a torch teacher): full runs only,
#: so a --quick run does not grow (~25 s: two XNNPACK lowerings and the int8 calibration)
EXECUTORCH = ("teacher.path=sample_models/digits_cnn_torch.pt2", "export.formats=[pte]",
              "evaluate.runtimes=[executorch]", "gates.min_compression=null", "gates.max_size=null")
PTE_RATIO_TARGET = 0.35


def executorch_row(quick: bool) -> dict:
    """float and int8 .pte of the torch sample teacher on ExecuTorch: bytes, their ratio, accuracy and p50."""
    report, run_dir, wall = _variant_run("quickstart", EXECUTORCH)
    teacher, baseline, final = (_artifact(report, n) for n in ("teacher", "baseline.pte", "model.pte"))
    latency = {name: _latencies(run_dir / name, "executorch", quick) for name in ("baseline.pte", "model.pte")}
    return {"teacher_accuracy": teacher["accuracy"], "float_bytes": baseline["bytes"], "int8_bytes": final["bytes"],
            "ratio": round(final["bytes"] / baseline["bytes"], 4), "float_accuracy": baseline["accuracy"],
            "int8_accuracy": final["accuracy"], "int8_agreement": final["agreement"],
            "float_p50_ms_1_thread": latency["baseline.pte"][1]["p50_ms"], "int8_p50_ms_1_thread": latency["model.pte"][1]["p50_ms"],
            "float_p50_ms_2_threads": latency["baseline.pte"][2]["p50_ms"], "int8_p50_ms_2_threads": latency["model.pte"][2]["p50_ms"],
            "wall_s": round(wall, 1)}


def _executorch_table(row: dict) -> str:
    return "\n".join([
        "| file | bytes | accuracy (ExecuTorch) | p50 ms, 1 thread | p50 ms, 2 threads |", "|---|--:|--:|--:|--:|",
        f"| baseline.pte (float32) | {row['float_bytes']:,} | {100 * row['float_accuracy']:.2f}% | "
        f"{row['float_p50_ms_1_thread']:.4f} | {row['float_p50_ms_2_threads']:.4f} |",
        f"| model.pte (int8) | {row['int8_bytes']:,} ({row['ratio']:.3f}×) | {100 * row['int8_accuracy']:.2f}% | "
        f"{row['int8_p50_ms_1_thread']:.4f} | {row['int8_p50_ms_2_threads']:.4f} |"])


def run(quick: bool = False) -> dict:
    """The run_all section: the precision table, the 32x32 int8 speed table and (full runs) the examples."""
    import common

    precision = precision_rows(quick)
    conv = conv32_rows(quick)
    examples = []
    qat_onnx = None if quick else qat_onnx_row()
    executorch = None if quick else executorch_row(quick)
    if not quick:
        for name in RECIPES:
            report, _, wall = _variant_run(name, ())
            examples.append(recipe_row(name, report, wall))
    targets = [common.target(f"int8_speedup_{r['arch']}",
                             f"{r['arch']} 32×32×3: int8 p50 ≤ {SPEEDUP_TARGET} × float p50 (LiteRT, 1 thread)",
                             r["int8_over_float_1_thread"], r["int8_over_float_1_thread"] <= SPEEDUP_TARGET,
                             f"{r['int8_p50_ms_1_thread']:.4f} ms vs {r['float_p50_ms_1_thread']:.4f} ms")
               for r in conv if r["runtime"] == "LiteRT"]
    if qat_onnx is not None:
        files = qat_onnx["files"]
        targets.append(common.target(
            "qat_onnx_vs_ptq_onnx", f"Keras QAT .onnx p50 ≤ {QAT_ONNX_TARGET} × PTQ .onnx p50 (quickstart teacher, "
            "ONNX Runtime, 1 thread)", qat_onnx["ratio"], qat_onnx["ratio"] <= QAT_ONNX_TARGET,
            f"{files['QAT int8']['p50_ms_1_thread']:.4f} ms vs {files['PTQ int8']['p50_ms_1_thread']:.4f} ms; "
            f"float ops on ORT: {', '.join(files['QAT int8']['float_ops']) or 'none'}"))
    text = ("Sample digits teacher (151k parameters, 8×8×1 input), 360 test samples; latency at batch 1, "
            f"median of {1 if quick else 3} × p50 of {50 if quick else 200} runs:\n\n" + _precision_table(precision)
            + "\n\nint8 against float on conv models large enough to time (synthetic 32×32×3 images, 10 classes, "
              "trained in the recipe, PTQ int8 with int8 I/O):\n\n" + _conv32_table(conv))
    if qat_onnx is not None:
        text += ("\n\nThe Keras QAT .onnx against the PTQ .onnx of the same teacher on ONNX Runtime (1 thread):\n\n"
                 + _qat_onnx_table(qat_onnx))
    if executorch is not None:
        targets.append(common.target(
            "pte_int8_vs_float_bytes", f"torch teacher int8 .pte ≤ {PTE_RATIO_TARGET} × float .pte bytes, within 1 point "
            "of the teacher on ExecuTorch", executorch["ratio"],
            executorch["ratio"] <= PTE_RATIO_TARGET and executorch["teacher_accuracy"] - executorch["int8_accuracy"] <= 0.01,
            f"{executorch['int8_bytes']:,} vs {executorch['float_bytes']:,} bytes, "
            f"{100 * executorch['int8_accuracy']:.2f}% vs teacher {100 * executorch['teacher_accuracy']:.2f}%"))
        text += ("\n\nThe torch sample teacher as an ExecuTorch .pte (XNNPACK delegate; int8 by XNNPACK's PT2E "
                 "quantizer), on ExecuTorch's runtime:\n\n" + _executorch_table(executorch))
    if examples:
        text += "\n\nThe example recipes (wall s: the whole in-process run, latency timing reduced to 1 run):\n\n" + table(examples)
    digits_float = next(r for r in precision if r["variant"] == "teacher float32" and r["runtime"] == "LiteRT")
    digits_int8 = next(r for r in precision if r["variant"] == "PTQ int8" and r["runtime"] == "LiteRT")
    notes = [
        "Compression is the teacher's float .tflite bytes (or gzip bytes) over the file's; accuracy and agreement "
        "(top-1 equal to the Keras teacher's) are measured by running each file on its runtime.",
        f"Digits teacher on LiteRT, 1 thread: int8 p50 {digits_int8['p50_ms_1_thread']:.4f} ms vs float "
        f"{digits_float['p50_ms_1_thread']:.4f} ms "
        f"({digits_int8['p50_ms_1_thread'] / digits_float['p50_ms_1_thread']:.2f}×). Invocations of a few "
        "microseconds are easily disturbed by timer and scheduling noise, so the speed target is judged on the "
        "32×32 models.",
        "ONNX int8 files are QDQ graphs (QuantizeLinear / DequantizeLinear around Conv and Gemm) with float32 I/O; "
        "the float16 .onnx has float32 I/O with a Cast at each end and is no faster than float32 on this CPU.",
        "2 threads against 1 (p50 ratio): " + ", ".join(
            f"{r['model'].split()[0]} on {r['runtime']} {r['float_p50_ms_2_threads'] / r['float_p50_ms_1_thread']:.2f} "
            f"float / {r['int8_p50_ms_2_threads'] / r['int8_p50_ms_1_thread']:.2f} int8" for r in conv)
        + ". On this shared 2-core machine the second core is often busy with other work, so the 2-thread "
          "figures vary most from run to run.",
    ]
    return {"title": "Compression, accuracy and latency of each precision", "rows": precision, "conv32": conv,
            "qat_onnx": qat_onnx, "executorch": executorch, "examples": examples, "targets": targets, "table": text, "notes": notes}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        rows = [measure(name, Path(tmp)) for name in args.recipes]
    text = table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "environment": describe_environment(), "rows": rows}
    (args.out / "compression.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / "compression.md").write_text(f"# Compression of the example recipes ({payload['created']})\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
