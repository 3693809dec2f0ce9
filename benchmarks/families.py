"""The coverage matrix (issue 11): every model family × framework through every stage, measured on the runtimes.

Each family is a zoo architecture (`teacher.build`) trained by the recipe on synthetic data made here:
32x32x3 images (`common.synthetic32`) for the image families and 16-step sequences of 16 features for
the sequence families. For each (family, framework) cell the section runs, in this process and through
`edgekit.run.pipeline.run` like `edgekit compress`:

    int8        PTQ int8, both formats: the figures of the matrix (bytes and p50 of int8 against float)
    dynamic     PTQ dynamic range
    float16     PTQ float16
    distill     distillation to the same family at half width, then PTQ int8
    prune       50% unstructured magnitude pruning, then PTQ int8
    qat         quantization-aware training, int8

Each variant records its exit status as `edgekit compress` would give it: 0, 2 (refused at validation,
with the message) or 3 (a stage failed). The teacher is trained once per cell (the stage cache, in
the scratch directory, serves the other variants). p50 of the float baseline and of the int8 file
are re-measured here (1 thread, batch 1, the median of 3 repetitions) rather than taken from the
run's own short timing.

    .venv/bin/python benchmarks/families.py            # alone: prints the table, writes results/families.json
    .venv/bin/python benchmarks/run_all.py --only families
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

#: family -> (zoo arch, width, data kind, task, teacher epochs)
FAMILIES = {
    "MLP": ("mlp", 1.0, "images", "classification", 4),
    "CNN": ("cnn_small", 1.0, "images", "classification", 4),
    "depthwise (MobileNet v1)": ("mobilenet_v1", 1.0, "images", "classification", 8),
    "inverted residual (MobileNetV2)": ("mobilenet_v2", 1.0, "images", "classification", 8),
    "residual (ResNet-8)": ("resnet8", 1.0, "images", "classification", 6),
    "Transformer encoder": ("transformer", 1.0, "sequences", "classification", 8),
    "LSTM": ("lstm", 2.0, "sequences", "classification", 8),
    "GRU": ("gru", 2.0, "sequences", "classification", 8),
    "regression head (CNN)": ("cnn_small", 1.0, "images", "regression", 4),
}
FRAMEWORKS = ("keras", "torch")
VARIANTS = {
    "int8": "  - quantize: {method: ptq, precision: int8}",
    "dynamic": "  - quantize: {method: ptq, precision: dynamic}",
    "float16": "  - quantize: {method: ptq, precision: float16}",
    "distill": ("  - distill: {student: {arch: ARCH, width: HALF}, epochs: 2}\n"
                "  - quantize: {method: ptq, precision: int8}"),
    "prune": ("  - prune: {sparsity: 0.5, structure: unstructured, epochs: 1}\n"
              "  - quantize: {method: ptq, precision: int8}"),
    "qat": "  - quantize: {method: qat, precision: int8, epochs: 1}",
}
QUICK = {"families": ("MLP",), "frameworks": ("keras",), "variants": ("int8",)}
RUNTIMES = (("tflite", "litert", "LiteRT"), ("onnx", "onnxruntime", "ORT"))
#: acceptance of issue 11: int8 bytes / float bytes (families of >= 50k parameters) and int8 p50 / float p50
SIZE_TARGET, SIZE_TARGET_DEPTHWISE, SPEED_TARGET, SPEED_TARGET_CONV = 0.35, 0.40, 1.0, 0.7
DEPTHWISE = ("depthwise (MobileNet v1)", "inverted residual (MobileNetV2)")
CONV = ("CNN", "inverted residual (MobileNetV2)", "depthwise (MobileNet v1)")


def sequences(n_train: int = 2000, n_test: int = 400, steps: int = 16, features: int = 16, classes: int = 8,
              seed: int = 0) -> Path:
    """An .npz of (steps, features) float sequences: a faint smooth class pattern under strong noise."""
    import numpy as np

    path = common.scratch() / f"sequences-{n_train}-{n_test}.npz"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(-1, 1, size=(classes, steps // 4, features)).repeat(4, axis=1)

    def make(n):
        y = rng.integers(0, classes, size=n)
        return (0.5 * patterns[y] + rng.standard_normal((n, steps, features))).astype(np.float32), y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def regression_images(quick: bool) -> Path:
    """synthetic32's images with a continuous target: the mean brightness of the image's top half."""
    import numpy as np

    path = common.scratch() / f"regression32-{quick}.npz"
    if not path.exists():
        data = dict(np.load(common.synthetic32(600, 200) if quick else common.synthetic32()))
        for split in ("train", "test"):
            x = data[f"x_{split}"].astype(np.float32) / 255.0
            data[f"y_{split}"] = x[:, :16].mean(axis=(1, 2, 3)).astype(np.float32) * 10.0
        np.savez(path, **data)
    return path


def _data(kind: str, task: str, quick: bool) -> str:
    if task == "regression":
        return f"{{source: npz, path: {regression_images(quick)}, scale: 0.00392156862745098}}"
    if kind == "images":
        path = common.synthetic32(600, 200) if quick else common.synthetic32()
        return f"{{source: npz, path: {path}, scale: 0.00392156862745098}}"
    return f"{{source: npz, path: {sequences(400, 100) if quick else sequences()}}}"


def recipe_text(family: str, framework: str, variant: str, quick: bool) -> str:
    arch, width, kind, task, epochs = FAMILIES[family]
    stages = VARIANTS[variant].replace("ARCH", arch).replace("HALF", str(width / 2))
    return f"""version: 1
name: family-{arch}-{task}-{framework}-{variant}
seed: 0
task: {task}
data: {_data(kind, task, quick)}
teacher:
  framework: {framework}
  build: {{arch: {arch}, width: {width}}}
  train: {{epochs: {1 if quick else epochs}, batch_size: 32, learning_rate: 0.001}}
stages:
{stages}
export: {{formats: [tflite, onnx]}}
evaluate:
  runtimes: [litert, onnxruntime]
  latency: {{warmup: {0 if variant != "int8" else 2}, runs: {1 if variant != "int8" else 10}}}
"""


def _run(path: Path):
    """`edgekit compress` in this process, with a stage cache in the scratch directory so that the
    variants of a cell train their teacher once."""
    from edgekit.recipe import load_recipe
    from edgekit.run.cache import StageCache
    from edgekit.run.pipeline import run

    recipe = load_recipe(path)
    out = common.scratch() / "runs" / path.stem
    result = run(recipe, out, cache=StageCache(common.scratch() / "stage-cache", enabled=True))
    return result.report, out


def _run_variant(family: str, framework: str, variant: str, quick: bool) -> dict:
    """One recipe through the pipeline; its exit status as the CLI gives it, and its report."""
    from edgekit.errors import EdgekitError

    path = common.scratch() / "recipes" / f"{family}-{framework}-{variant}.yaml".replace(" ", "_").replace("/", "_")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(recipe_text(family, framework, variant, quick))
    start = time.perf_counter()
    try:
        report, run_dir = _run(path)
    except EdgekitError as exc:  # the exit code the CLI gives it: 2 refused (recipe, input), 3 a stage failed
        return {"exit": exc.exit_code, "message": str(exc).strip().splitlines()[0][:300],
                "wall_s": time.perf_counter() - start}
    except Exception:  # anything else is a crash the CLI would also report as a failed stage
        return {"exit": 3, "message": traceback.format_exc().strip().splitlines()[-1][:300],
                "wall_s": time.perf_counter() - start}
    return {"exit": 0, "report": report, "run_dir": run_dir, "wall_s": time.perf_counter() - start}


def _quality(entry: dict, task: str):
    return entry.get("accuracy") if task == "classification" else entry.get("mae")


def _figures(result: dict, task: str, quick: bool) -> dict:
    """bytes, quality and p50 of the float baseline and the final file on each runtime."""
    report, run_dir = result["report"], result["run_dir"]
    teacher = common.artifact(report, "teacher")
    out = {"params": teacher["params"], "teacher_quality": _quality(teacher, task)}
    for fmt, runtime, label in RUNTIMES:
        base, final = common.artifact(report, f"baseline.{fmt}"), common.artifact(report, f"model.{fmt}")
        reps, runs = (1, 20) if quick else (3, 100)
        p_float = common.p50(run_dir / f"baseline.{fmt}", runtime, 1, reps=reps, warmup=5, runs=runs)["p50_ms"]
        p_final = common.p50(run_dir / f"model.{fmt}", runtime, 1, reps=reps, warmup=5, runs=runs)["p50_ms"]
        out[label] = {
            "float_bytes": base["bytes"], "bytes": final["bytes"], "bytes_ratio": round(final["bytes"] / base["bytes"], 3),
            "float_p50_ms": p_float, "p50_ms": p_final, "p50_ratio": round(p_final / p_float, 3),
            "quality": _quality(final, task), "float_quality": _quality(base, task),
            "flags": final.get("flags", []),
        }
    return out


def cell(family: str, framework: str, variants: tuple[str, ...], quick: bool) -> dict:
    task = FAMILIES[family][3]
    row = {"family": family, "framework": framework, "arch": FAMILIES[family][0], "task": task, "variants": {}}
    for variant in variants:
        result = _run_variant(family, framework, variant, quick)
        entry = {"exit": result["exit"], "wall_s": round(result["wall_s"], 1)}
        if result["exit"] == 0:
            entry.update(_figures(result, task, quick) if variant == "int8" else _summary(result, task))
        else:
            entry["message"] = result["message"]
        row["variants"][variant] = entry
        print(f"  {family} / {framework} / {variant}: exit {result['exit']} ({entry['wall_s']} s)"
              + (f" - {entry['message']}" if result["exit"] else ""), flush=True)
    return row


def _summary(result: dict, task: str) -> dict:
    """For the variants other than int8: quality and bytes of each final file, from the run's report."""
    report = result["report"]
    out = {"teacher_quality": _quality(common.artifact(report, "teacher"), task)}
    for fmt, _, label in RUNTIMES:
        base, final = common.artifact(report, f"baseline.{fmt}"), common.artifact(report, f"model.{fmt}")
        out[label] = {"bytes_ratio": round(final["bytes"] / base["bytes"], 3), "quality": _quality(final, task)}
    return out


def _drop(row: dict, label: str):
    """Teacher quality minus the int8 file's (accuracy points; for regression the MAE increase)."""
    int8 = row["variants"].get("int8", {})
    if int8.get("exit") != 0 or int8[label]["quality"] is None:
        return None
    teacher, final = int8["teacher_quality"], int8[label]["quality"]
    return round(100 * (teacher - final), 2) if row["task"] == "classification" else round(final - teacher, 4)


def table(rows: list[dict], variants: tuple[str, ...]) -> str:
    header = ["family", "framework", "params", *variants, "int8/float bytes (tflite, onnx)",
              "int8/float p50 LiteRT", "int8/float p50 ORT", "accuracy drop (pts; MAE for regression)"]
    lines = []
    for r in rows:
        int8 = r["variants"].get("int8", {})
        ok = int8.get("exit") == 0
        lines.append([
            r["family"], r["framework"], f"{int8['params']:,}" if ok else "-",
            *[str(r["variants"][v]["exit"]) if v in r["variants"] else "-" for v in variants],
            f"{int8['LiteRT']['bytes_ratio']:.2f}, {int8['ORT']['bytes_ratio']:.2f}" if ok else "-",
            f"{int8['LiteRT']['p50_ratio']:.2f}" if ok else "-", f"{int8['ORT']['p50_ratio']:.2f}" if ok else "-",
            f"{_drop(r, 'LiteRT')}, {_drop(r, 'ORT')}" if ok else "-",
        ])
    return common.md_table(header, lines)


def targets(rows: list[dict]) -> list[dict]:
    """Issue 11's acceptance, one line per (family, framework) and criterion."""
    out = []
    for r in rows:
        int8 = r["variants"].get("int8", {})
        name = f"{r['family']} / {r['framework']}"
        if int8.get("exit") != 0:
            out.append(common.target(f"{name} int8", f"{name}: int8 exit 0", int8.get("exit"), False, int8.get("message", "")))
            continue
        size_goal = SIZE_TARGET_DEPTHWISE if r["family"] in DEPTHWISE else SIZE_TARGET
        speed_goal = SPEED_TARGET_CONV if r["family"] in CONV else SPEED_TARGET
        for label in ("LiteRT", "ORT"):
            figures = int8[label]
            if int8["params"] >= 50_000:
                out.append(common.target(f"{name} {label} bytes", f"{name}, {label}: int8/float bytes <= {size_goal}",
                                         figures["bytes_ratio"], figures["bytes_ratio"] <= size_goal))
            out.append(common.target(f"{name} {label} p50", f"{name}, {label}: int8/float p50 <= {speed_goal}",
                                     figures["p50_ratio"],
                                     figures["p50_ratio"] <= speed_goal,
                                     f"{common.fmt_ms(figures['p50_ms'])} vs {common.fmt_ms(figures['float_p50_ms'])} ms"))
            drop = _drop(r, label)
            if r["task"] == "classification" and drop is not None:
                out.append(common.target(f"{name} {label} accuracy", f"{name}, {label}: accuracy drop <= 1 pt", drop,
                                         drop <= 1.0))
    return out


def run(quick: bool = False, families=None, frameworks=None, variants=None) -> dict:
    """The run_all section: the coverage matrix (a subset of its rows and columns when named)."""
    families = tuple(families or (QUICK["families"] if quick else FAMILIES))
    frameworks = tuple(frameworks or (QUICK["frameworks"] if quick else FRAMEWORKS))
    variants = tuple(variants or (QUICK["variants"] if quick else VARIANTS))
    rows = [cell(f, fw, variants, quick) for f in families for fw in frameworks]
    for r in rows:
        for v in r["variants"].values():
            v.pop("run_dir", None)
    notes = [f"exit per variant: 0 ok, 2 refused at validation, 3 a stage failed; the messages follow",
             "p50: 1 thread, batch 1, median of 3 repetitions of 100 runs, float baseline and int8 file timed "
             "back to back in one process"]
    for r in rows:
        for v, e in r["variants"].items():
            if e["exit"]:
                notes.append(f"{r['family']} / {r['framework']} / {v}: exit {e['exit']}: {e['message']}")
    return {"title": "Coverage matrix: model families × frameworks × stages", "rows": rows,
            "table": table(rows, variants), "notes": notes, "targets": targets(rows)}


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one cell, one epoch (the smoke test's size)")
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), metavar="FAMILY")
    parser.add_argument("--frameworks", nargs="+", choices=list(FRAMEWORKS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "families.json")
    args = parser.parse_args(argv)
    section = run(args.quick, args.families, args.frameworks, args.variants)
    print(section["table"])
    out = args.out
    out.write_text(json.dumps(section, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
