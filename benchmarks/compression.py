"""Compression of the example recipes, measured by running their exported files.

Runs each recipe through the same pipeline as `edgekit compress` (in this process, one after the
other), prints a table and writes benchmarks/results/compression.json. Every figure is read from the
run's report.json: bytes of the files, and accuracy measured on LiteRT / ONNX Runtime.

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

from edgekit.environment import describe_environment  # noqa: E402
from edgekit.pipeline import run  # noqa: E402
from edgekit.recipe import load_recipe  # noqa: E402

RECIPES = ("quickstart", "digits_full", "digits_cluster", "digits_channels", "digits_torch")


def _artifact(report: dict, name: str) -> dict:
    return next(a for a in report["artifacts"] if a["name"] == name)


def measure(recipe_name: str, workdir: Path) -> dict:
    recipe = load_recipe(ROOT / "recipes" / f"{recipe_name}.yaml")
    start = time.perf_counter()
    result = run(recipe, workdir / recipe_name)
    wall = time.perf_counter() - start
    report = result.report
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
