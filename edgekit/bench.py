"""Benchmark one model file on its deployment runtime: latency percentiles, threads, memory, size.

    result = bench("runs/quickstart/model.tflite", threads=2, runs=200)
    result["latency_ms"]["p50"], result["reported"]["threads"], result["memory"]["peak_rss_bytes"]

Latency is timed by exactly the code `compress` uses (`Session.latency(warmup, runs, batch)`), so a
number from `edgekit bench` and one in report.json mean the same thing. By default the input is the
session's fixed random sample of the right dtype and shape; `input_path` (an .npz) supplies a real
batch instead, checked against the model's input and quantized with the input's own scale / zero
point when the model is int8 and the array is float.

Threads are given twice: as requested, and as the runtime itself reports them (ONNX Runtime: the
session's `intra_op_num_threads`; LiteRT: ai_edge_litert has no getter, so the `num_threads` the
Interpreter was created with), so a thread setting that did not take effect is visible.
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgekit.errors import InputError


# ---- memory ----------------------------------------------------------------------------------

def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def current_rss_bytes() -> Optional[int]:
    """The process's resident set size now (Linux /proc/self/statm); None where that is unavailable."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory_figures(rss_before: Optional[int], rss_after: Optional[int]) -> dict:
    """Peak RSS of the process, and the RSS before / after the benchmark and their difference (bytes).

    The increase includes loading the runtime library when this is the process's first model. ru_maxrss
    is the kernel's high-water mark, which can trail the current RSS slightly, so the peak is the larger.
    """
    known = rss_before is not None and rss_after is not None
    return {"peak_rss_bytes": max(peak_rss_bytes(), rss_after or 0), "rss_before_bytes": rss_before,
            "rss_after_bytes": rss_after, "rss_increase_bytes": rss_after - rss_before if known else None}


# ---- threads as the runtime reports them -----------------------------------------------------

def _litert_threads(session) -> tuple[int, str]:
    return session.threads, "num_threads the ai_edge_litert Interpreter was created with (it exposes no getter)"


def _ort_threads(session) -> tuple[int, str]:
    options = session._sess.get_session_options()  # noqa: SLF001 - the ORT session the Session wraps
    return int(options.intra_op_num_threads), "onnxruntime get_session_options().intra_op_num_threads"


def _executorch_threads(session) -> tuple[int, str]:
    from edgekit.runtimes.executorch import pool_threads

    return pool_threads(), "ExecuTorch's process-wide threadpool (_threadpool_get_thread_count), which XNNPACK runs on"


#: runtime name -> (threads, where the figure comes from)
RUNTIME_THREADS: dict[str, Callable[[object], tuple[int, str]]] = {
    "litert": _litert_threads,
    "onnxruntime": _ort_threads,
    "executorch": _executorch_threads,
}


# ---- --input FILE.npz ------------------------------------------------------------------------

def _pick_array(npz, path: Path, input_name: str) -> str:
    """The array named like the model input (with or without its ':0' suffix), else the first one."""
    names = list(npz.files)
    if not names:
        raise InputError(f"{path}: the .npz holds no arrays; save the input batch with np.savez(path, x=batch)")
    for candidate in (input_name, input_name.split(":")[0]):
        if candidate in names:
            return candidate
    return names[0]


def _convert(x: np.ndarray, info, path: Path, key: str) -> np.ndarray:
    """`x` in the input tensor's dtype: as is, quantized (float data, int8 model), or a lossless cast."""
    from edgekit.runtimes.base import quantize

    target = np.dtype(info.dtype)
    if x.dtype == target:
        return x
    if info.quantized and np.issubdtype(x.dtype, np.floating):
        return quantize(x, info)
    numeric = np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
    if np.issubdtype(target, np.floating) and numeric:
        return x.astype(target)
    if np.issubdtype(target, np.integer) and np.issubdtype(x.dtype, np.integer) and x.size:
        limits = np.iinfo(target)
        if limits.min <= x.min() and x.max() <= limits.max:
            return x.astype(target)
    expected = f"{info.dtype} values" + (" or float values (quantized with the input's scale and zero point)"
                                         if info.quantized else "")
    raise InputError(f"{path}: array '{key}' is {x.dtype}, but the model input '{info.name}' is {info.dtype}; "
                     f"give {expected}")


def load_input(path: str | Path, info, batch: int = 1) -> tuple[np.ndarray, str]:
    """(input batch in the model's dtype, array name) from an .npz, checked against TensorInfo `info`.

    A single sample without the batch dimension is accepted. `batch` other than 1 must equal the
    number of samples in the file (1 means "use the file's batch").
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: input file not found (give an .npz holding one input batch)")
    try:
        with np.load(p, allow_pickle=False) as npz:
            key = _pick_array(npz, p, info.name)
            x = np.asarray(npz[key])
    except InputError:
        raise
    except Exception as exc:  # not a zip, a pickled object array, a truncated file ...
        raise InputError(f"{p}: cannot read it as an .npz of arrays ({exc})") from None
    sample = info.shape[1:]
    if x.ndim == len(sample) and x.ndim < len(info.shape):
        x = x[None]  # one sample without its batch dimension
    expected = ["N"] + [d if d > 0 else "?" for d in sample]
    if x.ndim != len(info.shape) or any(e not in (-1, g) for e, g in zip(sample, x.shape[1:])) or len(x) == 0:
        raise InputError(f"{p}: array '{key}' has shape {list(x.shape)}, but the model input '{info.name}' "
                         f"expects {expected} ({info.dtype}); save a batch of that shape")
    if batch != 1 and batch != len(x):
        raise InputError(f"{p}: array '{key}' holds {len(x)} samples but --batch {batch} was asked; "
                         "drop --batch to use the file's batch, or save that many samples")
    return _convert(x, info, p, key), key


def _fixed_input(x: np.ndarray, path: Path) -> Callable[..., np.ndarray]:
    """A stand-in for Session.sample_input that returns the file's batch, so `latency` times it."""
    def sample_input(batch: int, seed: int = 0) -> np.ndarray:
        if batch != len(x):
            raise InputError(f"{path}: the model runs batches of {batch} only, but the file holds {len(x)} "
                             f"samples; save {batch}")
        return x
    return sample_input


# ---- the benchmark ---------------------------------------------------------------------------

def _check_settings(threads: int, warmup: int, runs: int, batch: int) -> None:
    for name, value, low in (("threads", threads, 1), ("warmup", warmup, 0), ("runs", runs, 1), ("batch", batch, 1)):
        if int(value) < low:
            raise InputError(f"--{name} must be at least {low}, got {value}")


def _open(path: str | Path, runtime: Optional[str], threads: int):
    from edgekit.formats.registry import find_format, runtime_for_path
    from edgekit.runtimes import get_runtime

    rt = get_runtime(runtime) if runtime else runtime_for_path(path)
    fmt = find_format(path)
    if fmt is not None and rt.name not in fmt.runtimes:
        raise InputError(f"{path}: runtime '{rt.name}' runs .{rt.file_format} files, not .{fmt.name}; "
                         f"use --runtime {fmt.default_runtime} or leave --runtime out")
    return rt.open(path, threads=threads)


def bench(path: str | Path, runtime: Optional[str] = None, threads: int = 1, warmup: int = 10, runs: int = 100,
          batch: int = 1, input_path: Optional[str | Path] = None) -> dict:
    """Open `path` on its runtime (or `runtime`), time `runs` invocations after `warmup`, and report.

    Returns {"model", "format", "bytes", "runtime", "runtime_version",
    "input": {name, shape, dtype, scale, zero_point, "source": "random" | "<file>:<array>"},
    "requested": {threads, warmup, runs, batch}, "reported": {threads, threads_source, warmup, runs, batch},
    "latency_ms": {p50, p90, p99, mean, min, max},
    "memory": {peak_rss_bytes, rss_before_bytes, rss_after_bytes, rss_increase_bytes}}.
    `reported.batch` can differ from the request when the file's batch dimension is fixed.
    InputError (exit 2) for a missing / unreadable model or an input file that does not fit it.
    """
    from edgekit.formats.files import file_size

    _check_settings(threads, warmup, runs, batch)
    requested = {"threads": int(threads), "warmup": int(warmup), "runs": int(runs), "batch": int(batch)}
    size = file_size(path)
    rss_before = current_rss_bytes()
    session = _open(path, runtime, int(threads))
    with session:
        info = session.input
        source = "random"
        if input_path is not None:
            x, key = load_input(input_path, info, int(batch))
            batch, source = len(x), f"{input_path}:{key}"
            # Same timing code as compress; only the batch it feeds is the file's instead of a random one.
            session.sample_input = _fixed_input(x, Path(input_path))
        latency = session.latency(int(warmup), int(runs), int(batch))
        description = session.describe()
        reported_threads, threads_source = RUNTIME_THREADS[session.runtime_name](session)
        rss_after = current_rss_bytes()
    return {
        "model": str(path),
        "format": Path(path).suffix.lower().lstrip("."),
        "bytes": size["bytes"],
        "runtime": description["runtime"],
        "runtime_version": description["version"],
        "input": {**info.to_dict(), "source": source},
        "requested": requested,
        "reported": {"threads": reported_threads, "threads_source": threads_source,
                     "warmup": latency["warmup"], "runs": latency["runs"], "batch": latency["batch"]},
        "latency_ms": {k: latency[k] for k in ("p50", "p90", "p99", "mean", "min", "max")},
        "memory": memory_figures(rss_before, rss_after),
    }
