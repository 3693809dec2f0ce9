"""Where the time goes, op by op: an int8 file beside its float baseline (1 thread, batch 1, random input).

Issue 11 asks for the op-level profile that shows why int8 is not faster than float where it is not.
This takes the float and the int8 file of one model (both `.onnx` or both `.tflite`: the runtime follows
the suffix), feeds each a fixed random input of its shape and dtype (int8 inputs take int8) and measures:

ONNX Runtime (`.onnx`): ORT's own profiler (`enable_profiling`, intra- and inter-op threads 1, default
graph optimizations: the nodes are those of the optimized graph ORT runs, e.g. QGemm / QLinearConv, and
the DequantizeLinear nodes it left in place). Of the `warmup` + `runs` profiled runs only the last
`runs` count; each node gets its median "Node" `*_kernel_time` duration (ORT records whole µs) times
its executions per run (the median, so that a run preempted on a shared machine does not skew it);
nodes are summed by `args.op_name`. `profiled total` is the median `model_run` event; `p50` is timed
without the profiler in a second session (time.perf_counter_ns around `run`). The profiler costs time
per node: in a graph of hundreds of sub-µs nodes (a Keras Transformer) the node times and their sum
come out several times the unprofiled p50, so compare node counts and the heavy nodes, not the sums.

LiteRT (`.tflite`): the Python Interpreter of `ai_edge_litert` has no per-op profiler (op profiling is in
the C++ benchmark_model tool, `--enable_op_profiling`, not in the wheel). Measured instead:
  * p50 of the whole file with the default resolver (AUTO: builtin kernels + the XNNPACK delegate, what
    an app gets) and with `BUILTIN_WITHOUT_DEFAULT_DELEGATES` (LiteRT's own kernels only);
  * the ops XNNPACK leaves to the builtin kernels (edgekit's LiteRT session, `describe()`);
  * each op of the main subgraph timed alone: the file is rewritten (ai_edge_litert's flatbuffer_utils)
    into a one-op model keeping every tensor, buffer and subgraph (a WHILE keeps its body), whose
    inputs are the op's non-constant inputs, fed the values the op sees in the whole model (one run
    with `experimental_preserve_all_tensors`, builtin kernels). Each one-op model is timed with AUTO
    (XNNPACK if it takes the op) and builtin only: median of max(10, runs / 4) invokes after 3, variable
    tensors (LSTM state) reset before each, untimed. An isolated time includes one invoke's overhead
    (the "fastest isolated op" row), so sums over many tiny ops overstate them; read the heavy ops.

    python benchmarks/op_profile.py /tmp/run/baseline.onnx /tmp/run/model.onnx [--runs 200] [--out x.json]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from edgekit.quiet import native_stderr_silenced  # noqa: E402  (common puts the repo on sys.path)

TOP = 8  # nodes the table lists per file (the JSON has every node, slowest first)


def random_input(shape, dtype, seed: int = 0) -> np.ndarray:
    """A fixed random array: standard normal for floats, the full range for 8-bit ints, zeros otherwise."""
    rng, dtype = np.random.default_rng(seed), np.dtype(dtype)
    shape = [int(d) if isinstance(d, (int, np.integer)) and d > 0 else 1 for d in shape]  # symbolic, -1: 1
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    if dtype.itemsize == 1 and np.issubdtype(dtype, np.integer):
        return rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    return np.zeros(shape, dtype)


def _median_us(call, runs: int, warmup: int, before=None) -> float:
    """Median wall time of `call()` in µs over `runs` calls after `warmup`; `before()` runs untimed."""
    times = []
    for i in range(warmup + runs):
        if before:
            before()
        start = time.perf_counter_ns()
        call()
        if i >= warmup:
            times.append(time.perf_counter_ns() - start)
    return float(np.median(times)) / 1e3


def _by_op(nodes) -> dict:
    """Per op type: the node count and the sum of every numeric figure of its nodes (errors counted)."""
    ops: dict = {}
    for node in nodes:
        agg = ops.setdefault(node["op"], defaultdict(float))
        agg["nodes"] += 1
        agg["errors"] += "error" in node
        for k, v in node.items():
            if isinstance(v, (int, float)):  # bool too: "delegated" counts the delegated nodes
                agg[k] += v
    return {op: {k: int(v) if k in ("nodes", "errors", "delegated") else v for k, v in agg.items()}
            for op, agg in ops.items()}


# ---- ONNX Runtime ------------------------------------------------------------------------------

def _ort_session(path: Path, profile_dir: str | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level, options.enable_profiling = 3, profile_dir is not None
    options.profile_file_prefix = str(Path(profile_dir or ".") / "ort")  # where end_profiling() writes
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort_feeds(sess) -> dict:
    types = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float16)": np.float16}
    return {i.name: random_input(i.shape, types[i.type]) for i in sess.get_inputs()}


def profile_onnx(path: Path, runs: int, warmup: int) -> dict:
    """ORT's profiler over `runs` runs: µs per run by op type and by node, plus the unprofiled p50."""
    plain = _ort_session(path, None)
    feeds = _ort_feeds(plain)  # the same input for both sessions
    p50_us = _median_us(lambda: plain.run(None, feeds), runs, warmup)
    with tempfile.TemporaryDirectory() as tmp:
        sess = _ort_session(path, tmp)
        for _ in range(warmup + runs):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                        key=lambda e: e["ts"])[-runs:]  # the warmup runs are profiled too: drop them
    window, model_runs = (model_runs[0]["ts"] if model_runs else 0), [e["dur"] for e in model_runs]
    durations, op_of = defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e.get("ts", 0) >= window and e.get("name", "").endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            durations[node].append(e["dur"])
            op_of[node] = e["args"].get("op_name", "?")
    # per node: median duration x executions per run (robust to the odd preempted run on a shared machine)
    nodes = {(n, op_of[n]): float(np.median(d)) * len(d) / runs for n, d in durations.items()}
    return {"runtime": "onnxruntime", "path": str(path), "runs": runs, "profiled_runs": len(model_runs),
            "p50_us": p50_us, "profiled_total_us": float(np.median(model_runs)) if model_runs else None,
            "kernel_sum_us": sum(nodes.values()), "ops": _by_op({"op": op, "us": us} for (_, op), us in nodes.items()),
            "nodes": [{"node": n, "op": op, "us": us} for (n, op), us in sorted(nodes.items(), key=lambda kv: -kv[1])]}


# ---- LiteRT ------------------------------------------------------------------------------------

def _interpreter(content: bytes | None, path: Path | None, builtin_only: bool, preserve: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin_only else OpResolverType.AUTO
    with native_stderr_silenced():
        return Interpreter(model_path=str(path) if path else None, model_content=bytes(content) if content else None,
                           num_threads=1, experimental_op_resolver_type=resolver,
                           experimental_preserve_all_tensors=preserve)


def _time_interpreter(interp, values: list[np.ndarray], runs: int, warmup: int) -> float:
    """Resize the inputs to `values`' shapes, feed them once, and time invoke (µs, median)."""
    details = interp.get_input_details()
    for d, v in zip(details, values):
        if list(d["shape"]) != list(v.shape):
            interp.resize_tensor_input(d["index"], list(v.shape))
    interp.allocate_tensors()
    for d, v in zip(details, values):
        interp.set_tensor(d["index"], v)
    return _median_us(interp.invoke, runs, warmup, before=interp.reset_all_variables)


def _isolated_ops(path: Path, feed: list[np.ndarray], runs: int) -> list[dict]:
    """Each op of subgraph 0 as a one-op model fed its real inputs, timed with AUTO and builtin only."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    full = _interpreter(None, path, builtin_only=True, preserve=True)
    _time_interpreter(full, feed, runs=1, warmup=0)  # one run: every intermediate tensor kept
    model = fbu.read_model(str(path))
    model.signatureDefs = []  # they name the original inputs / outputs
    sub = model.subgraphs[0]
    operators, inputs, outputs = sub.operators, sub.inputs, sub.outputs

    def constant(t: int) -> bool:  # a weight (its buffer holds data) or a variable (state) tensor
        data = model.buffers[sub.tensors[t].buffer].data
        return bool(sub.tensors[t].isVariable or (data is not None and len(data)))

    out = []
    for op in operators:
        name = fbu.opcode_to_name(model, op.opcodeIndex) or f"opcode {op.opcodeIndex}"
        node = str(sub.tensors[op.outputs[0]].name, "utf-8", "replace") if len(op.outputs) else "?"
        feeds = list(dict.fromkeys(int(t) for t in op.inputs if t >= 0 and not constant(int(t))))
        entry = {"op": name, "node": node[-120:]}
        try:
            values = [np.array(full.get_tensor(t)) for t in feeds]
            sub.operators, sub.inputs, sub.outputs = [op], np.array(feeds, np.int32), np.array(
                [t for t in op.outputs if t >= 0], np.int32)
            content = fbu.convert_object_to_bytearray(model)
            auto = _interpreter(content, None, builtin_only=False)
            entry["auto_us"] = _time_interpreter(auto, values, runs, 3)  # XNNPACK is applied at allocation
            entry["delegated"] = any(o["op_name"] == "DELEGATE" for o in auto._get_ops_details())  # noqa: SLF001
            entry["builtin_us"] = _time_interpreter(_interpreter(content, None, True), values, runs, 3)
        except Exception as exc:  # an op that cannot stand alone is listed with the reason, not timed
            entry["error"] = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        out.append(entry)
    sub.operators, sub.inputs, sub.outputs = operators, inputs, outputs
    return out


def profile_tflite(path: Path, runs: int, warmup: int) -> dict:
    """p50 with and without XNNPACK, the ops XNNPACK leaves out, and every op timed in isolation."""
    from edgekit.runtimes import get_runtime

    described = get_runtime("litert").open(path, threads=1).describe()
    auto = _interpreter(None, path, builtin_only=False)
    feed = [random_input(d["shape"], d["dtype"], seed=i) for i, d in enumerate(auto.get_input_details())]
    p50_auto = _time_interpreter(auto, feed, runs, warmup)
    p50_builtin = _time_interpreter(_interpreter(None, path, builtin_only=True), feed, runs, warmup)
    isolated = _isolated_ops(path, feed, max(10, runs // 4))
    timed = [e for e in isolated if "error" not in e]
    return {"runtime": "litert", "path": str(path), "runs": runs, "p50_us": p50_auto, "p50_builtin_us": p50_builtin,
            "xnnpack": described.get("xnnpack"), "undelegated_ops": described.get("undelegated_ops"),
            "isolated_sum_auto_us": sum(e["auto_us"] for e in timed), "ops": _by_op(isolated),
            "isolated_floor_us": min((e["auto_us"] for e in timed), default=None),
            "nodes": sorted(timed, key=lambda e: -e["auto_us"]),
            "errors": [e for e in isolated if "error" in e]}


# ---- report ------------------------------------------------------------------------------------

def _us(value) -> str:
    return "-" if value is None else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def tables(float_prof: dict, int8_prof: dict) -> str:
    """Markdown: totals, op types (largest first) and the top nodes, float beside int8."""
    lite, sides = float_prof["runtime"] == "litert", (float_prof, int8_prof)
    key = "auto_us" if lite else "us"
    totals = ([("p50 (µs), default (XNNPACK)", "p50_us"), ("p50 (µs), builtin kernels only", "p50_builtin_us"),
               ("sum of isolated ops (µs, default)", "isolated_sum_auto_us"),
               ("fastest isolated op (µs, ~ invoke overhead)", "isolated_floor_us")] if lite else
              [("p50 (µs), unprofiled", "p50_us"), ("profiled total per run (µs)", "profiled_total_us"),
               ("sum of node kernel times (µs)", "kernel_sum_us")])
    rows = [[label, _us(float_prof[k]), _us(int8_prof[k]),
             f"{int8_prof[k] / float_prof[k]:.2f}" if float_prof[k] and int8_prof[k] else "-"] for label, k in totals]
    if lite:
        rows.append(["ops left to builtin kernels", *(_hist(p["undelegated_ops"]) for p in sides), ""])
    lines = [common.md_table(["", "float", "int8", "int8/float"], rows), ""]
    header, rows = ["op type"], []
    for side in ("float", "int8"):
        header += [f"{side} nodes", f"{side} µs" + (" default" if lite else "/run"), f"{side} %"]
        header += [f"{side} µs builtin", f"{side} delegated"] if lite else []
    for op in sorted(set(float_prof["ops"]) | set(int8_prof["ops"]),
                     key=lambda op: -max(p["ops"].get(op, {}).get(key, 0.0) for p in sides)):
        row = [op]
        for prof in sides:
            agg, total = prof["ops"].get(op), sum(a.get(key, 0.0) for a in prof["ops"].values()) or 1.0
            row += ["-"] * (5 if lite else 3) if agg is None else (
                [agg["nodes"], _us(agg.get(key)), f"{100 * agg.get(key, 0.0) / total:.1f}"]
                + ([_us(agg.get("builtin_us")), f"{agg['delegated']}/{agg['nodes']}"] if lite else []))
        rows.append(row)
    lines += [common.md_table(header, rows), ""]
    rows = []
    for i in range(min(TOP, max(len(p["nodes"]) for p in sides))):
        row = [i + 1]
        for n in (p["nodes"][i] if i < len(p["nodes"]) else None for p in sides):
            row += [f"{n['op']} `{_short(n['node'])}`" + (" (XNNPACK)" if n.get("delegated") else ""), _us(n[key])] \
                if n else ["-", "-"]
        rows.append(row)
    lines.append(common.md_table(["#", "float node", "µs", "int8 node", "µs"], rows, "rlrlr"))
    lines += [f"\n{side}: {e['op']} `{e['node']}` not timed alone: {e['error']}"
              for prof, side in zip(sides, ("float", "int8")) for e in prof.get("errors", [])]
    return "\n".join(lines)


def _short(name: str, width: int = 44) -> str:  # the tail of a long node name is the distinctive part
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _hist(hist) -> str:  # {"WHILE": 1} -> "WHILE ×1"
    return "-" if hist is None else ", ".join(f"{op} ×{n}" for op, n in sorted(hist.items())) or "none"


PROFILERS = {".onnx": profile_onnx, ".tflite": profile_tflite}


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("float_file", type=Path)
    parser.add_argument("int8_file", type=Path)
    parser.add_argument("--runs", type=int, default=200, help="timed / profiled runs per file (default 200)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, help="write the figures and the table as JSON")
    args = parser.parse_args(argv)
    suffixes = {args.float_file.suffix, args.int8_file.suffix}
    if len(suffixes) != 1 or not suffixes <= set(PROFILERS):
        parser.error(f"both files must be .onnx or both .tflite, got {sorted(suffixes)}")
    profiler = PROFILERS[suffixes.pop()]
    float_prof, int8_prof = (profiler(f, args.runs, args.warmup) for f in (args.float_file, args.int8_file))
    table = tables(float_prof, int8_prof)
    print(table)
    if args.out:
        args.out.write_text(json.dumps({"float": float_prof, "int8": int8_prof, "table": table}, indent=2,
                                       default=str) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
