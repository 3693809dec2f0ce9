"""edgekit search on one worker against two: the wall time of the same search, and the same front.

`edgekit search recipes/digits_search.yaml` (16 trials) runs as a fresh process with `--workers 1`,
then with `--workers 2`, each with an empty stage cache of its own, so both train and measure the
same trials. Target on this 2-core machine: two workers take ≤ 0.75× the wall time of one, and
find the same Pareto front and the same chosen trial.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PYTHON, ROOT, check, md_table, scratch, target, timed_run  # noqa: E402

RECIPE = ROOT / "recipes" / "digits_search.yaml"


def _search(workers: int, base: Path, quick: bool) -> tuple[float, dict]:
    out = base / f"workers{workers}"
    args = [PYTHON, "-m", "edgekit.cli", "search", str(RECIPE), "--workers", str(workers), "--output", str(out),
            "--cache-dir", str(base / f"cache{workers}"), "-q", "--json"]
    if quick:
        args += ["--trials", "4", "--set", "search.population=4", "--set", "stages.0.distill.epochs=4",
                 "--set", "stages.1.prune.epochs=1"]
    seconds, proc = timed_run(args, timeout=1800)
    check(proc, f"edgekit search --workers {workers}", ok=(0, 1))
    return seconds, json.loads((out / "report.json").read_text())["search"]


def _front(search: dict) -> list:
    return sorted({tuple(sorted(p["params"].items())) for p in search["points"] if p["trial"] in search["front"]})


def run(quick: bool = False) -> dict:
    base = scratch() / "search-workers"
    rows = {}
    for workers in (1, 2):
        seconds, search = _search(workers, base, quick)
        chosen = next(p for p in search["points"] if p["trial"] == search["chosen"])
        rows[workers] = {"wall_s": round(seconds, 2), "search_wall_s": search["wall_s"],
                         "trials": search["completed"] + search["failed"], "front": _front(search),
                         "chosen": search["chosen"], "chosen_bytes": chosen["bytes"],
                         "chosen_accuracy": chosen["accuracy"], "trained_steps": search["cache"]["trained_steps"],
                         "cached_steps": search["cache"]["cached_steps"]}
    ratio = round(rows[2]["wall_s"] / rows[1]["wall_s"], 3)
    same = rows[1]["front"] == rows[2]["front"] and rows[1]["chosen"] == rows[2]["chosen"]
    targets = [target("search_two_workers", "edgekit search: 2 workers ≤ 0.75× the wall time of 1, same front",
                      ratio, ratio <= 0.75 and same,
                      f"{rows[1]['wall_s']} s → {rows[2]['wall_s']} s, {'same' if same else 'DIFFERENT'} front")]
    table = md_table(["workers", "trials", "wall s (process)", "search s", "front points", "chosen trial",
                      "chosen bytes", "chosen accuracy (validation)", "steps trained / from cache"],
                     [[w, r["trials"], r["wall_s"], r["search_wall_s"], len(r["front"]), r["chosen"], r["chosen_bytes"],
                       f"{100 * r['chosen_accuracy']:.1f}%", f"{r['trained_steps']} / {r['cached_steps']}"]
                      for w, r in rows.items()], "lrrrrrrrr")
    for r in rows.values():
        r["front"] = [dict(params) for params in r["front"]]
    return {"title": "edgekit search: one worker against two", "workers": rows, "ratio": ratio,
            "same_front": same, "targets": targets, "table": table,
            "notes": [f"{RECIPE.relative_to(ROOT)}, fresh process and empty stage cache each; wall time of the "
                      f"whole process (Ray's start included). Two workers / one: {ratio:.2f}×."]}


if __name__ == "__main__":
    print(run("--quick" in sys.argv)["table"])
