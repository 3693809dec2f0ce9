"""CLI responsiveness: `edgekit --help` and `edgekit validate` start without TensorFlow or torch.

Each command runs as a fresh process (the `edgekit` console script of this interpreter's
environment, as a user types it); the median of 10 runs is reported beside Python's own start-up
(`python -c pass`). A separate probe runs each command in-process and lists which heavy frameworks
ended up in `sys.modules` (it must be none). Target: ≤ 0.5 s per command.

    .venv/bin/python benchmarks/cli_speed.py [--quick]
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PYTHON, ROOT, check, md_table, median, target, timed_run  # noqa: E402

TARGET_S = 0.5
HEAVY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "torch", "onnxruntime", "ai_edge_litert",
         "onnx", "tf2onnx", "sklearn")
PROBE = """
import json, sys
from edgekit.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def edgekit_command() -> list[str]:
    """The console script next to this interpreter (what `make install` puts in .venv/bin), else `-m`."""
    script = Path(PYTHON).parent / "edgekit"
    if script.exists():
        return [str(script)]
    found = shutil.which("edgekit")
    return [found] if found else [PYTHON, "-m", "edgekit.cli"]


def _time(args: list[str], runs: int) -> dict:
    times = []
    for _ in range(runs):
        wall, proc = timed_run(args)
        check(proc, " ".join(args))
        times.append(wall)
    return {"median_s": round(median(times), 4), "min_s": round(min(times), 4), "max_s": round(max(times), 4),
            "runs": runs}


def _heavy_imports(argv: list[str]) -> list[str]:
    _, proc = timed_run([PYTHON, "-c", PROBE.format(heavy=HEAVY), *argv])
    check(proc, f"import probe {argv}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict:
    runs = 3 if quick else 10
    edgekit = edgekit_command()
    commands = {
        "python -c pass": ([PYTHON, "-c", "pass"], None),
        "edgekit --help": ([*edgekit, "--help"], ["--help"]),
        "edgekit validate recipes/quickstart.yaml": ([*edgekit, "validate", "recipes/quickstart.yaml"],
                                                     ["validate", str(ROOT / "recipes" / "quickstart.yaml")]),
    }
    rows = {}
    for label, (args, probe) in commands.items():
        rows[label] = _time(args, runs)
        rows[label]["heavy_imports"] = _heavy_imports(probe) if probe else None
    targets = [target(f"cli_{label.split()[1].lstrip('-')}", f"`{label}` ≤ {TARGET_S} s (median of {runs}), "
                      "no TensorFlow / torch import",
                      rows[label]["median_s"], rows[label]["median_s"] <= TARGET_S and not rows[label]["heavy_imports"],
                      f"heavy modules imported: {', '.join(rows[label]['heavy_imports']) or 'none'}")
               for label in commands if label.startswith("edgekit")]
    table = md_table(["command", f"median s ({runs} runs)", "min s", "max s", "heavy frameworks imported"],
                     [[label, f"{r['median_s']:.3f}", f"{r['min_s']:.3f}", f"{r['max_s']:.3f}",
                       "-" if r["heavy_imports"] is None else (", ".join(r["heavy_imports"]) or "none")]
                      for label, r in rows.items()], "lrrrl")
    return {"title": "CLI responsiveness (fresh process each run)", "commands": rows, "runs": runs,
            "executable": " ".join(edgekit), "targets": targets, "table": table,
            "notes": [f"`edgekit` is {' '.join(edgekit)}; each run is a new process timed from spawn to exit, "
                      "from the repository root.",
                      "Heavy frameworks checked: " + ", ".join(HEAVY) + " (in-process probe of the same command)."]}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick)["table"])
