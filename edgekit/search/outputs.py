"""What a finished search leaves: `runs/<name>/` is the shipped trial's run, plus `search/`.

    runs/<name>/            the chosen trial's run directory (model files, report, recipe.resolved.yaml)
      search/trials.csv     one row per finished trial: values, figures, gates met, error
      search/pareto.json    the front, the chosen trial and why
      search/journal.log    the Optuna journal (the study, for optuna-dashboard or a later analysis)
      search/trials/<n>/    each trial's report.json and recipe.resolved.yaml

report.json gets a `search` section (the plot of the front in report.html reads it), and the run
directory replaces the previous one atomically (`edgekit.run.rundir`), as a single run's does.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from edgekit.recipe.search import Objective
from edgekit.report import write_report
from edgekit.run.rundir import staged_directory
from edgekit.search.pareto import Outcome

TRIAL_FILES = ("report.json", "recipe.resolved.yaml")


def search_section(outcome: Outcome, objectives: list[Objective], select: Objective, summary: dict) -> dict:
    """report.json's `search` section."""
    points = [{k: v for k, v in p.items() if k not in ("constraints",)} for p in outcome.points]
    return {
        "split": "validation",
        **summary,
        "completed": sum(p["state"] == "complete" for p in points),
        "failed": sum(p["state"] == "failed" for p in points),
        "objectives": [{"name": o.name, "format": o.fmt, "key": o.key, "direction": o.direction, "label": o.label}
                       for o in objectives],
        "select": select.key,
        "feasible": outcome.feasible,
        "chosen": outcome.chosen,
        "front": outcome.front,
        "cache": {"trained_steps": sum(len(p["trained"]) for p in points),
                  "cached_steps": sum(len(p["cached"]) for p in points)},
        "points": points,
    }


def write_search(target: Path, state_dir: Path, section: dict, exit_code: int) -> dict:
    """Replace `target` with the chosen trial's run and the search's files; returns its report."""
    chosen = state_dir / "trials" / str(section["chosen"])
    with staged_directory(target) as workdir:
        for path in chosen.iterdir():
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, workdir / path.name)
        report = json.loads((workdir / "report.json").read_text(encoding="utf-8"))
        report["search"] = section
        report["exit_code"] = exit_code
        report["passed"] = exit_code == 0
        folder = workdir / "search"
        folder.mkdir()
        _write_csv(folder / "trials.csv", section)
        pareto = {key: section[key] for key in ("objectives", "select", "feasible", "chosen", "split")}
        pareto["front"] = [p for p in section["points"] if p["trial"] in section["front"] or p["trial"] == section["chosen"]]
        (folder / "pareto.json").write_text(json.dumps(pareto, indent=1), encoding="utf-8")
        shutil.copy2(state_dir / "journal.log", folder / "journal.log")
        for point in section["points"]:
            source = state_dir / "trials" / str(point["trial"])
            if source.is_dir():
                (folder / "trials" / str(point["trial"])).mkdir(parents=True)
                for name in TRIAL_FILES:
                    if (source / name).exists():
                        shutil.copy2(source / name, folder / "trials" / str(point["trial"]) / name)
        write_report(workdir, report)
    return report


def _write_csv(path: Path, section: dict) -> None:
    params = sorted({key for p in section["points"] for key in p["params"]})
    objectives = [o["key"] for o in section["objectives"]]
    columns = ["trial", "state", *params, *objectives, "bytes", "p50_ms", "accuracy", "mae", "feasible",
               "violation", "pareto", "chosen", "trained", "cached", "wall_s", "error"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for p in section["points"]:
            row = {**{k: p.get(k) for k in columns}, **p["params"], **(p["values"] or {})}
            row.update(chosen=p["trial"] == section["chosen"], trained=" ".join(p["trained"]),
                       cached=" ".join(p["cached"]))
            writer.writerow(row)
