"""edgekit against the hand-written TF-MOT chain: the same pruning + int8 work, each in its own process.

The plain side is `benchmarks/handwritten_tfmot.py` (TF-MOT's "Pruning in Keras" tutorial chain
written with tf_keras + tfmot + tf.lite + ai_edge_litert directly); the edgekit side is
`edgekit compress benchmarks/recipes/tfmot_equivalent.yaml --no-cache -q --json` (cold: edgekit's
stage cache would otherwise skip the training on a re-run; a warm re-run is shown apart). Both are
timed as whole processes (interpreter start, imports, data, training, conversion, evaluation),
alternating, and the median of the repetitions is reported.

edgekit does more than the plain script: it also exports the float teacher as baseline.tflite,
evaluates the teacher and both files, records in-framework figures after each stage and times
latency (10 warm-up + 100 timed invocations per file by default). The like-with-like run sets
`evaluate.latency.runs=1, warmup=0`; the ≤ 1.2× target applies to that run. Both are shown.

    .venv/bin/python benchmarks/tfmot_chain.py [--quick]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, PYTHON, check, md_table, median, pct, scratch, target, timed_run  # noqa: E402

RECIPE = BENCH / "recipes" / "tfmot_equivalent.yaml"
LIKE_WITH_LIKE = ("evaluate.latency.runs=1", "evaluate.latency.warmup=0")
TARGET_RATIO = 1.2


def _plain(out: Path) -> dict:
    wall, proc = timed_run([PYTHON, str(BENCH / "handwritten_tfmot.py"), "--out", str(out)])
    check(proc, "handwritten_tfmot.py")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "accuracy": result["litert_accuracy"], "path": out, "steps": result["times"]}


def _edgekit(out: Path, overrides: tuple[str, ...], cache: Path | None = None) -> dict:
    """`edgekit compress` in a fresh process: cold (--no-cache) unless a stage-cache directory is given."""
    args = [PYTHON, "-m", "edgekit.cli", "compress", str(RECIPE), "--output", str(out), "-q", "--json"]
    args += ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    for item in overrides:
        args += ["--set", item]
    wall, proc = timed_run(args)
    check(proc, "edgekit compress")
    report = json.loads((out / "report.json").read_text())
    model = next(a for a in report["artifacts"] if a["name"] == "model.tflite")
    return {"wall_s": wall, "accuracy": model["accuracy"], "path": out / "model.tflite",
            "steps": {s["name"]: s["wall_s"] for s in report["stages"]}}


REPORT_COST = """
import json, sys, tempfile, time
from pathlib import Path
start = time.perf_counter()
from edgekit.report import write_report
report = json.loads(Path(sys.argv[1]).read_text())
with tempfile.TemporaryDirectory() as out:
    write_report(Path(out), report)
print(time.perf_counter() - start)
"""


def _report_cost(report_json: Path) -> float:
    """Seconds a fresh process takes to import edgekit.report and write report.md / .html from a report.json."""
    _, proc = timed_run([PYTHON, "-c", REPORT_COST, str(report_json)])
    check(proc, "write_report timing")
    return float(proc.stdout.strip().splitlines()[-1])


def _summarise(runs: list[dict]) -> dict:
    from edgekit.formats.files import file_size, weight_sparsity

    last = runs[-1]
    size = file_size(last["path"])
    step_names = list(last["steps"])
    return {
        "runs": len(runs),
        "wall_s": round(median(r["wall_s"] for r in runs), 2),
        "wall_s_each": [round(r["wall_s"], 2) for r in runs],
        "litert_accuracy": last["accuracy"],
        "accuracy_each": [r["accuracy"] for r in runs],
        "bytes": size["bytes"],
        "gzip_bytes": size["gzip_bytes"],
        "weight_sparsity": round(weight_sparsity(last["path"])["sparsity"], 4),
        "steps_s": {name: round(median(r["steps"].get(name, 0.0) for r in runs), 3) for name in step_names},
    }


def run(quick: bool = False) -> dict:
    reps = 1 if quick else 3
    work = scratch() / "tfmot"
    work.mkdir(parents=True, exist_ok=True)
    configs = {"plain": [], "edgekit_like": []}
    cache = work / "stage-cache"
    if not quick:
        configs["edgekit_default"] = []
        configs["edgekit_warm"] = []
        _edgekit(work / "prime-cache", LIKE_WITH_LIKE, cache)  # fills the stage cache; not timed
    for rep in range(reps):  # alternate, so drift in machine load hits every side alike
        configs["plain"].append(_plain(work / f"plain-{rep}.tflite"))
        configs["edgekit_like"].append(_edgekit(work / f"like-{rep}", LIKE_WITH_LIKE))
        if not quick:
            configs["edgekit_default"].append(_edgekit(work / f"default-{rep}", ()))
            configs["edgekit_warm"].append(_edgekit(work / f"warm-{rep}", LIKE_WITH_LIKE, cache))
    sides = {name: _summarise(runs) for name, runs in configs.items()}
    report_s = median(_report_cost(work / f"like-{rep}" / "report.json") for rep in range(reps))
    sides["edgekit_like"]["report_writing_s"] = round(report_s, 3)
    plain_wall = sides["plain"]["wall_s"]
    for name in sides:
        sides[name]["ratio_to_plain"] = round(sides[name]["wall_s"] / plain_wall, 3)
    ratio = sides["edgekit_like"]["ratio_to_plain"]
    result = {
        "title": "edgekit vs the hand-written TF-MOT chain (prune 50%→80% for 2 epochs, int8 PTQ, LiteRT)",
        "repetitions": reps,
        "sides": sides,
        "ratio_like_with_like": ratio,
        "ratio_recipe_defaults": sides.get("edgekit_default", {}).get("ratio_to_plain"),
        "targets": [target("tfmot_wall_ratio", f"edgekit wall / plain wall ≤ {TARGET_RATIO} (like with like)",
                           ratio, ratio <= TARGET_RATIO,
                           f"{sides['edgekit_like']['wall_s']} s vs {plain_wall} s, median of {reps}")],
    }
    result["table"] = _tables(sides, reps)
    result["notes"] = _notes(sides, report_s)
    return result


def _tables(sides: dict, reps: int) -> str:
    names = [("plain", "plain TF-MOT script"),
             ("edgekit_like", "edgekit --no-cache, like with like (latency runs=1, warmup=0)"),
             ("edgekit_default", "edgekit --no-cache, recipe defaults (latency 10 + 100 runs)"),
             ("edgekit_warm", "edgekit, like with like, warm stage cache (a re-run)")]
    names = [(k, label) for k, label in names if k in sides]
    rows = [
        ["LiteRT accuracy (360 test samples)"] + [pct(sides[k]["litert_accuracy"]) for k, _ in names],
        ["weight sparsity in the .tflite"] + [pct(sides[k]["weight_sparsity"], 1) for k, _ in names],
        [".tflite bytes"] + [f"{sides[k]['bytes']:,}" for k, _ in names],
        [".tflite gzip -9 bytes"] + [f"{sides[k]['gzip_bytes']:,}" for k, _ in names],
        [f"process wall s (median of {reps})"] + [f"{sides[k]['wall_s']:.2f}" for k, _ in names],
        ["each run, s"] + [", ".join(f"{v:.1f}" for v in sides[k]["wall_s_each"]) for k, _ in names],
        ["wall / plain"] + [f"{sides[k]['ratio_to_plain']:.2f}×" for k, _ in names],
    ]
    main = md_table([""] + [label for _, label in names], rows, "l" + "r" * len(names))
    # Where the time goes on each side (medians of the recorded step times).
    short = {"plain": "plain", "edgekit_like": "edgekit like-with-like", "edgekit_default": "edgekit defaults",
             "edgekit_warm": "edgekit warm cache"}
    lines = []
    for key, _ in names:
        steps = sides[key]["steps_s"]
        lines += [[f"{short[key]}: {k.removesuffix('_s')}", f"{v:.3f}"] for k, v in steps.items()]
        lines.append([f"{short[key]}: outside those (interpreter start, imports{', data, report' if key != 'plain' else ''})",
                      f"{sides[key]['wall_s'] - sum(steps.values()):.3f}"])
    steps_table = md_table(["step", "wall s (median)"], lines)
    return main + "\n\nWhere the time goes:\n\n" + steps_table


def _notes(sides: dict, report_s: float) -> list[str]:
    like = sides["edgekit_like"]["steps_s"]
    extra = sum(v for k, v in like.items() if "baseline" in k or k == "evaluate teacher")
    plain = sides["plain"]
    plain_outside = plain["wall_s"] - sum(v for k, v in plain["steps_s"].items() if k != "data_s")
    edgekit_outside = sides["edgekit_like"]["wall_s"] - sum(like.values())
    return [
        "Both sides: same teacher (sample_models/digits_cnn.keras), same digits arrays (the plain script loads "
        "them with edgekit.data.load_dataset: identical split, validation hold-out and 256 calibration samples), "
        "PolynomialDecay 0.50→0.80 with pruning frequency 4, Adam 1e-3, batch 32, 2 epochs, full-integer int8 "
        "with int8 input/output, accuracy on LiteRT.",
        "Schedule difference: the tutorial's PolynomialDecay ends at the last step (end_step = all 82 steps); "
        "edgekit's reaches 80% at 3/4 of the steps (step 61) and fine-tunes at 80% for the last quarter.",
        "The tutorial's default pruning frequency (100 steps) never prunes in an 82-step run (the file stays dense); "
        "the plain script uses edgekit's frequency rule so both reach 80% (see handwritten_tfmot.py).",
        f"edgekit also exports and evaluates the float baseline.tflite and evaluates the Keras teacher "
        f"({extra:.2f} s in the like-with-like run) and writes report.json/md/html, model_card.json, labels.txt.",
        f"Outside its timed stages edgekit spends {edgekit_outside:.1f} s (interpreter start and exit, imports, the "
        f"digits data, the report, the run directory) against the plain script's {plain_outside:.1f} s for its "
        f"data loading, interpreter start and exit; writing report.md/html alone takes {report_s:.2f} s in a fresh "
        "process (mostly importing matplotlib and drawing the HTML plots).",
        "The ≤ 1.2× target applies to the like-with-like run, cold (--no-cache: every step trained, as the plain "
        "script does); the recipe-defaults run adds the latency timing edgekit does by default. The warm-cache "
        "column is a re-run of the same recipe, served from edgekit's stage cache (no training, no TensorFlow "
        "import): what iterating on gates or evaluation settings costs, not a like-with-like figure.",
    ]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    print(result["table"])
