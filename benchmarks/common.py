"""Helpers shared by the benchmark sections: paths, one scratch directory, cached runs, timing, tables.

Sections run one after the other in the process of `benchmarks/run_all.py` (or alone). Runs that
several sections need (the quickstart recipe, the 32x32 conv models) are made once per process in a
scratch directory that is removed at exit, so `--only limits` works alone and a full run does not
train anything twice.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
PYTHON = sys.executable
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_SCRATCH: Path | None = None
_RUNS: dict = {}


def scratch() -> Path:
    """A temporary directory for this process's runs, removed at exit."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    return _SCRATCH


def clean_env() -> dict:
    """The environment for child processes: no EDGEKIT_* settings leaking in, the repo importable, and
    edgekit's stage cache (if a child uses it) inside the scratch directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_")}
    env["EDGEKIT_CACHE_DIR"] = str(scratch() / "stage-cache")  # never the user's ~/.cache/edgekit
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def timed_run(args: list[str], cwd: Path = ROOT, timeout: int = 900) -> tuple[float, subprocess.CompletedProcess]:
    """Run a child process to completion; (wall seconds of the whole process, completed process)."""
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - start, proc


def check(proc: subprocess.CompletedProcess, what: str, ok=(0,)) -> None:
    if proc.returncode not in ok:
        raise RuntimeError(f"{what} exited with {proc.returncode}:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}")


def median(values) -> float:
    return float(statistics.median(values))


def run_recipe(recipe_path: Path, overrides: tuple[str, ...] = (), key: str | None = None):
    """Run a recipe through `edgekit.run.pipeline.run` in this process, once per (path, overrides).

    Returns (report dict, run directory, wall seconds)."""
    from edgekit.run.pipeline import run
    from edgekit.recipe import load_recipe

    cache_key = key or f"{recipe_path}|{'|'.join(overrides)}"
    if cache_key not in _RUNS:
        recipe = load_recipe(recipe_path, overrides)
        out = scratch() / "runs" / f"run{len(_RUNS)}-{recipe.name}"
        start = time.perf_counter()
        result = run(recipe, out)
        _RUNS[cache_key] = (result.report, out, time.perf_counter() - start)
    return _RUNS[cache_key]


def artifact(report: dict, name: str) -> dict:
    return next(a for a in report["artifacts"] if a["name"] == name)


def quickstart_run():
    """The quickstart recipe (sample teacher -> int8 PTQ), latency timing reduced to one run."""
    return run_recipe(ROOT / "recipes" / "quickstart.yaml",
                      ("evaluate.latency.runs=1", "evaluate.latency.warmup=0"), key="quickstart")


def p50(path: Path, runtime: str, threads: int, reps: int = 3, warmup: int = 20, runs: int = 200) -> dict:
    """Median over `reps` repetitions of the p50 of `runs` timed invocations (batch 1), in ms.

    Each repetition opens the file afresh with get_runtime(runtime).open(path, threads)."""
    from edgekit.runtimes import get_runtime

    values = []
    for _ in range(reps):
        session = get_runtime(runtime).open(path, threads=threads)
        try:
            values.append(session.latency(warmup=warmup, runs=runs, batch=1)["p50"])
        finally:
            session.close()
    return {"p50_ms": median(values), "p50_reps_ms": [round(v, 5) for v in values]}


def md_table(header: list[str], rows: list[list], align: str | None = None) -> str:
    """A GitHub markdown table; `align` is one char per column, 'l' or 'r' (default: first l, rest r)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if a == "l" else "--:" for a in align) + "|"]
    lines += ["| " + " | ".join("-" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 0.1 else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def target(name: str, goal: str, value, met: bool, detail: str = "") -> dict:
    """One target line for the summary: what, the goal, the measured value, met or not, why."""
    return {"name": name, "target": goal, "value": value, "met": bool(met), "detail": detail}


# ---- a conv model large enough to time: synthetic 32x32x3 data --------------------------------

#: zoo architecture -> training epochs on synthetic32 (cnn_small reaches ~99.8% test accuracy, mobilenet_v1 ~86%)
CONV32_ARCHS = {"cnn_small": 4, "mobilenet_v1": 8}


def synthetic32(n_train: int = 3000, n_test: int = 500, classes: int = 10, seed: int = 0) -> Path:
    """An .npz of 32x32x3 uint8 images with a learnable rule, written once into the scratch directory.

    Each class has a smooth random colour pattern (a 4x4x3 grid upsampled to 32x32); a sample is
    mid-grey + a faint class pattern + strong pixel noise, so a small CNN learns it in a few epochs
    without every model reaching 100%."""
    import numpy as np

    path = scratch() / f"synthetic32-{n_train}-{n_test}.npz"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(-1, 1, size=(classes, 4, 4, 3)).repeat(8, axis=1).repeat(8, axis=2)

    def make(n):
        y = rng.integers(0, classes, size=n)
        x = 0.5 + 0.12 * patterns[y] + 0.5 * rng.standard_normal((n, 32, 32, 3))
        return (np.clip(x, 0, 1) * 255).round().astype(np.uint8), y.astype(np.int64)

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def conv32_run(arch: str, quick: bool = False):
    """A zoo `arch` (width 1.0) trained on synthetic32, then int8 PTQ; exported .tflite and .onnx.

    Returns the cached (report, run directory, wall seconds) of `run_recipe`."""
    key = f"conv32-{arch}-{'quick' if quick else 'full'}"
    if key in _RUNS:
        return _RUNS[key]
    data = synthetic32(600, 200) if quick else synthetic32()
    epochs = 1 if quick else CONV32_ARCHS[arch]
    recipe = scratch() / f"{key}.yaml"
    recipe.write_text(f"""version: 1
name: {key}
seed: 0
data:
  source: npz
  path: {data}
  scale: 0.00392156862745098
  calibration_samples: 256
teacher:
  build: {{arch: {arch}, width: 1.0}}
  train: {{epochs: {epochs}, batch_size: 32, learning_rate: 0.001}}
stages:
  - quantize: {{method: ptq, precision: int8, io: int8}}
export:
  formats: [tflite, onnx]
evaluate:
  runtimes: [litert, onnxruntime]
  latency: {{warmup: 0, runs: 1}}
""")
    return run_recipe(recipe, key=key)


def cpuinfo() -> dict[str, str]:
    """The first value of each /proc/cpuinfo key (empty where the file is unreadable)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                info.setdefault(key, value)
    except OSError:
        pass
    return info
