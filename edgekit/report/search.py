"""The report's `search` section (written by `edgekit search`), as text both pages and the plot share.

A search runs many trials of a recipe and keeps one: the run directory holds the chosen trial, and
its report.json says how it was found. The pages show one summary sentence, the Pareto points (the
trials no other completed trial beats on every objective) and each failed trial's error:

- `search_summary`: trials completed and failed, workers, sampler, wall time, cache use, the chosen
  trial and whether it meets every gate;
- `pareto_rows`: one row per Pareto point (and the chosen trial, should it not be one), best first
  on the first objective;
- `failed_rows`: one row per failed trial, with its error on one line.

Every value may be null (the search could not measure it); a null shows as `-` or is left out.
"""

from __future__ import annotations

from edgekit.report.contents import quality_key
from edgekit.report.formatting import format_number, format_quality


def completed_points(report: dict) -> list[dict]:
    """The search's completed trials that have a quality figure: the ones the plot can place."""
    key = quality_key(report)
    return [p for p in (report.get("search") or {}).get("points") or []
            if p.get("state") == "complete" and p.get(key) is not None]


def search_summary(report: dict) -> str:
    """One sentence: how many trials ran and how, the objectives, the chosen trial and its verdict."""
    search = report["search"]
    return " ".join(part for part in (_run_sentence(search), _objective_sentence(search), _chosen_sentence(search))
                    if part)


def _run_sentence(search: dict) -> str:
    how = [f"{search['workers']} worker(s)" if search.get("workers") is not None else "",
           f"sampler {search['sampler']}" if search.get("sampler") else "",
           f"seed {search['seed']}" if search.get("seed") is not None else "",
           f"{search['wall_s']:.1f} s wall time" if search.get("wall_s") is not None else ""]
    cache = search.get("cache") or {}
    if cache.get("trained_steps") is not None or cache.get("cached_steps") is not None:
        how.append(f"{format_number(cache.get('trained_steps'))} stage step(s) trained, "
                   f"{format_number(cache.get('cached_steps'))} reused from the cache")
    counts = (f"{format_number(search.get('trials'))} trials: {format_number(search.get('completed'))} completed, "
              f"{format_number(search.get('failed'))} failed")
    return f"{counts}; {', '.join(part for part in how if part)}." if any(how) else f"{counts}."


def _objective_sentence(search: dict) -> str:
    objectives = [f"{o.get('direction') or 'optimize'} {o.get('label') or o.get('name')}"
                  for o in search.get("objectives") or []]
    if not objectives:
        return ""
    return f"Objectives: {'; '.join(objectives)}; quality on the {search.get('split') or 'validation'} split."


def _chosen_sentence(search: dict) -> str:
    chosen = search.get("chosen")
    if chosen is None:
        return "No trial was chosen."
    by = f", selected by {search['select']}" if search.get("select") else ""
    if search.get("feasible"):
        return f"Chosen: trial {chosen}{by}; it meets every gate."
    return f"Chosen: trial {chosen}, the closest by gate margins; it does not meet every gate (no trial did)."


def pareto_rows(report: dict) -> list[dict]:
    """The Pareto points and the chosen trial, best first on the first objective, as text cells."""
    search = report["search"]
    chosen = search.get("chosen")
    points = [p for p in search.get("points") or []
              if p.get("state") == "complete" and (p.get("pareto") or p.get("trial") == chosen)]
    key = quality_key(report)
    return [{"trial": str(p.get("trial")), "chosen": p.get("trial") == chosen, "pareto": bool(p.get("pareto")),
             "params": [(str(name), format_number(value)) for name, value in (p.get("params") or {}).items()],
             "bytes": format_number(p.get("bytes")), "p50": format_number(p.get("p50_ms"), 3),
             "quality": format_quality(report, p.get(key)), "feasible": "yes" if p.get("feasible") else "no"}
            for p in sorted(points, key=_first_objective(search))]


def _first_objective(search: dict):
    """Sort key: the first objective's value, best first; points without one (and ties) by trial number."""
    objectives = search.get("objectives") or [{}]
    first = objectives[0]
    name, sign = first.get("key") or first.get("name"), -1 if first.get("direction") == "maximize" else 1

    def key(point: dict):
        value = (point.get("values") or {}).get(name)
        return (value is None, sign * value if value is not None else 0, point.get("trial") or 0)
    return key


def failed_rows(report: dict) -> list[dict]:
    """The failed trials, in trial order, each with its error as one line."""
    failed = [p for p in report["search"].get("points") or [] if p.get("state") == "failed"]
    return [{"trial": str(p.get("trial")), "error": " ".join(str(p.get("error") or "no error recorded").split())}
            for p in sorted(failed, key=lambda p: p.get("trial") or 0)]
