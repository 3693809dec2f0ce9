"""The stage cache: a second run of an unchanged training recipe against the first.

Each recipe runs twice as a fresh `edgekit compress` process sharing one empty cache directory:
cold (everything trained and converted), then warm (every trained step and exported file reused,
the framework never imported). Target: warm ≥ 5× faster, with byte-identical artifacts.
`--quick`: digits_from_scratch alone (its 30-epoch teacher is the cheapest training recipe).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PYTHON, ROOT, check, md_table, scratch, target, timed_run  # noqa: E402

RECIPES = ("digits_full", "digits_from_scratch", "digits_torch")
QUICK_RECIPE = "digits_from_scratch"
FILES = ("model.tflite", "model.onnx", "baseline.tflite", "baseline.onnx")


def _run(recipe: str, out: Path, cache: Path) -> float:
    args = [PYTHON, "-m", "edgekit.cli", "compress", str(ROOT / "recipes" / f"{recipe}.yaml"),
            "--output", str(out), "-q", "--json", "--cache-dir", str(cache)]
    seconds, proc = timed_run(args)
    check(proc, f"edgekit compress {recipe}")
    return seconds


def run(quick: bool = False) -> dict:
    rows = {}
    for recipe in (QUICK_RECIPE,) if quick else RECIPES:
        base = scratch() / f"cache-{recipe}"
        cold = _run(recipe, base / "cold", base / "cache")
        warm = _run(recipe, base / "warm", base / "cache")
        same = all((base / "cold" / f).read_bytes() == (base / "warm" / f).read_bytes() for f in FILES)
        report = json.loads((base / "warm" / "report.json").read_text())
        rows[recipe] = {"cold_s": round(cold, 2), "warm_s": round(warm, 2), "speedup": round(cold / warm, 2),
                        "identical_files": same,
                        "cached_steps": sum(1 for s in report["stages"] if s.get("cached"))}
    targets = [target(f"cache_{name}", f"{name}: unchanged re-run ≥ 5× faster, identical artifacts", r["speedup"],
                      r["speedup"] >= 5 and r["identical_files"], f"{r['cold_s']} s → {r['warm_s']} s")
               for name, r in rows.items()]
    table = md_table(["recipe", "first run s", "re-run s", "speed-up", "identical files", "steps from cache"],
                     [[name, r["cold_s"], r["warm_s"], f"{r['speedup']:.1f}×", "yes" if r["identical_files"] else "NO",
                       r["cached_steps"]] for name, r in rows.items()], "lrrrll")
    return {"title": "Stage cache: an unchanged recipe run twice", "recipes": rows, "targets": targets,
            "table": table, "notes": ["Fresh process each run, one shared empty cache directory per recipe."]}


if __name__ == "__main__":
    print(run("--quick" in sys.argv)["table"])
