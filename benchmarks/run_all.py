"""Run edgekit's benchmark suite and write benchmarks/results/latest.json and latest.md.

Sections (each a module with `run(quick) -> dict` holding its figures, its table text and its targets):

    cli          edgekit --help / validate wall time against `python -c pass`       (cli_speed.py)
    tfmot        edgekit against the hand-written TF-MOT prune + int8 chain           (tfmot_chain.py)
    compression  float / PTQ int8 / dynamic / float16 / QAT / digits_full, and int8 speed on 32x32 conv models
    limits       bytes per parameter, MAC/s against the CPU's int8 peak               (limits.py)
    scale        evaluation on 1k / 10k / 100k samples, fresh process each            (scale.py)
    cache        an unchanged training recipe run twice: the stage cache's speed-up   (cache_speed.py)
    families     the coverage matrix: model families × frameworks × stages            (families.py)
    accuracy_control  quantize.max_drop 0.01 on an outlier-channel digits CNN, both frameworks, 3 seeds, ~2 minutes
                      (accuracy_control.py)
    search       edgekit search recipes/digits_search.yaml on 1 worker against 2, ~3 minutes  (search_workers.py)

    .venv/bin/python benchmarks/run_all.py                       # everything, ~65 minutes on 2 cores (families ~55)
    .venv/bin/python benchmarks/run_all.py --only cli scale      # some sections, merged into latest.*
    .venv/bin/python benchmarks/run_all.py --quick --out /tmp/b  # reduced run (~8 minutes on 2 cores), for the smoke test

A full run writes benchmarks/results/; `--quick` without `--out` writes benchmarks/results/quick/,
so a quick run never replaces the real figures. With `--only`, the sections run are replaced in an
existing latest.json (each section keeps the date it was measured) and latest.md is rewritten.
Exit code 1 if a section raised (its traceback is recorded); targets missed do not change it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import ROOT, cpuinfo  # noqa: E402

#: section name -> module (in the order they run: the subprocess-timed sections first)
SECTIONS = {"cli": "cli_speed", "tfmot": "tfmot_chain", "cache": "cache_speed", "compression": "compression",
            "limits": "limits", "scale": "scale", "families": "families",
            "accuracy_control": "accuracy_control", "search": "search_workers", "training": "training",
            "streaming": "streaming"}


def machine() -> dict:
    """CPU, clock, cores, vector extensions and load, for the header of the results."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        load = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        load = None
    try:
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kib = None
    return {
        "cpu": info.get("model name"), "vendor": info.get("vendor_id"), "cpu_family": info.get("cpu family"),
        "cpu_mhz": float(info["cpu MHz"]) if "cpu MHz" in info else None, "cores": os.cpu_count(),
        "hypervisor": "hypervisor" in flags, "memory_gib": round(mem_kib / 1024**2, 1) if mem_kib else None,
        "vector_extensions": sorted(flags & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16"}),
        "load_average": load,
    }


def describe(m: dict) -> str:
    return (f"{m['cpu']} ({m['vendor']} family {m['cpu_family']}), {m['cores']} cores"
            f"{' (VM)' if m['hypervisor'] else ''}, {m['cpu_mhz']:.0f} MHz reported, "
            f"{m['memory_gib']} GiB, {' '.join(m['vector_extensions'])}")


def render_md(payload: dict) -> str:
    env, m = payload["environment"], payload["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    lines = [f"# edgekit benchmarks ({payload['created']}{', quick run' if payload['quick'] else ''})", "",
             f"Machine: {describe(m)}; load average at start {m['load_average']} (a shared machine: "
             "figures carry noise).", f"Python {env['python']} on {env['platform']}; {packages}.", "",
             "Command: `.venv/bin/python benchmarks/run_all.py` "
             f"(total {payload['total_wall_s']:.0f} s for the sections run last).", "", "## Targets", ""]
    rows = []
    for name, section in payload["sections"].items():
        for t in section.get("targets", []):
            rows.append(f"| {name} | {t['target']} | {t['value']} | {'met' if t['met'] else 'NOT met'} | {t['detail']} |")
        if "error" in section:
            rows.append(f"| {name} | section failed | - | NOT met | {section['error'].strip().splitlines()[-1]} |")
    lines += ["| section | target | measured | verdict | detail |", "|---|---|--:|---|---|", *rows, ""]
    for name, section in payload["sections"].items():
        lines += [f"## {section.get('title', name)}", "",
                  f"Section `{name}`, measured {section.get('created', payload['created'])}"
                  f"{' (quick)' if section.get('quick') else ''} in {section.get('wall_s', 0):.0f} s.", ""]
        if "error" in section:
            lines += ["```", section["error"].strip(), "```", ""]
            continue
        lines += [section["table"], ""]
        lines += [f"- {note}" for note in section.get("notes", [])] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), metavar="SECTION",
                        help=f"run these sections only ({', '.join(SECTIONS)})")
    parser.add_argument("--quick", action="store_true", help="a reduced run (for the smoke test)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default benchmarks/results, or benchmarks/results/quick with --quick)")
    args = parser.parse_args(argv)
    out = args.out or (HERE / "results" / ("quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)

    from edgekit.environment import describe_environment

    names = [n for n in SECTIONS if not args.only or n in args.only]
    payload = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
               "machine": machine(), "environment": describe_environment(), "sections": {}}
    previous = out / "latest.json"
    if args.only and previous.exists():
        try:
            old = json.loads(previous.read_text())
            if old.get("quick") == args.quick:
                payload["sections"] = {k: v for k, v in old.get("sections", {}).items() if k in SECTIONS}
        except (OSError, ValueError):
            pass
    failed = False
    start = time.perf_counter()
    for name in names:
        print(f"== {name} ==", flush=True)
        t0 = time.perf_counter()
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            section = importlib.import_module(SECTIONS[name]).run(args.quick)
        except Exception:  # record and go on: the other sections still run and the files are written
            failed = True
            section = {"title": name, "error": traceback.format_exc(), "targets": []}
            print(section["error"], file=sys.stderr, flush=True)
        section.update(created=stamp, quick=args.quick, wall_s=round(time.perf_counter() - t0, 1))
        payload["sections"][name] = section
        if "table" in section:
            print(section["table"], "\n", flush=True)
    payload["sections"] = {k: payload["sections"][k] for k in SECTIONS if k in payload["sections"]}
    payload["total_wall_s"] = round(time.perf_counter() - start, 1)
    payload["machine"]["load_average_end"] = machine()["load_average"]
    previous.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (out / "latest.md").write_text(render_md(payload))
    print(f"wrote {out / 'latest.json'} and {out / 'latest.md'} in {payload['total_wall_s']:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
