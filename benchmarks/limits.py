"""Against the limit: how close the int8 files come to 1 byte per parameter, and to the CPU's int8 peak.

Size: every byte of an int8 .tflite is attributed by reading its flatbuffer with
`ai_edge_litert.schema_py_generated` (through `edgekit.formats.tflite.schema.load_model`): int8 weights
(input 1 of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED...), int32 biases (their input 2), other
constant tensors (reshape shapes...), quantization parameter arrays (scales as float32, zero points
as int64, min/max), tensor shape vectors, tensor names, metadata buffers, and the rest (flatbuffer
tables, vtables, offsets, alignment, operator codes and options, signatures) = total − those.
The ideal is 1 byte per parameter; the overhead is (total − parameters) / parameters.

Latency: multiply-accumulates per inference counted from the .tflite op shapes (CONV_2D: output
elements × kh·kw·Cin; DEPTHWISE_CONV_2D: output elements × kh·kw; FULLY_CONNECTED: rows × out ×
in), divided by the LiteRT p50 at 1 thread, against a peak estimated from /proc/cpuinfo (see
`cpu_peak`: it is rough, a factor of ~2 either way).

    .venv/bin/python benchmarks/limits.py [--quick]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import cpuinfo, md_table, pct  # noqa: E402

BIAS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
CATEGORIES = ("int8 weights", "int32 biases", "other constants", "quantization parameters", "tensor shapes",
              "tensor names", "metadata", "rest (graph, tables, offsets, padding)")


def _ops(schema, model, subgraph) -> list[tuple[str, list[int], list[int]]]:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        codes.append(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"))
    ops = []
    for k in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(k)
        inputs = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append((codes[op.OpcodeIndex()], inputs, outputs))
    return ops


def _buffer_size(model, buf: bytes, index: int) -> int:
    if not 0 < index < model.BuffersLength():
        return 0
    buffer = model.Buffers(index)
    if buffer.DataLength() > 0:
        return int(buffer.DataLength())
    if buffer.Offset() > 1 and buffer.Size() > 0:
        return int(buffer.Size())
    return 0


def size_breakdown(path: Path) -> dict:
    """Bytes of a .tflite attributed to weights, biases, quantization parameters, graph... (see module doc)."""
    from edgekit.formats.tflite.schema import load_model

    schema, model, buf = load_model(Path(path))
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    total = len(buf)
    parts = dict.fromkeys(CATEGORIES, 0)
    elements = {"int8 weights": 0, "int32 biases": 0, "other constants": 0}
    seen_buffers: set[int] = set()
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        role = {}
        for name, inputs, _ in _ops(schema, model, subgraph):
            if name in BIAS_OPS and len(inputs) > 1 and inputs[1] >= 0:
                role.setdefault(inputs[1], "weights")
            if name in BIAS_OPS and len(inputs) > 2 and inputs[2] >= 0:
                role.setdefault(inputs[2], "bias")
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            parts["tensor names"] += len(tensor.Name() or b"")
            parts["tensor shapes"] += 4 * (tensor.ShapeLength() + tensor.ShapeSignatureLength())
            q = tensor.Quantization()
            if q is not None:
                parts["quantization parameters"] += 4 * (q.ScaleLength() + q.MinLength() + q.MaxLength()) \
                    + 8 * q.ZeroPointLength()
            index = tensor.Buffer()
            size = _buffer_size(model, buf, index)
            if not size or index in seen_buffers:
                continue
            seen_buffers.add(index)
            n = math.prod(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else 1
            kind = type_names.get(tensor.Type(), "?")
            if role.get(t) == "weights" and kind == "INT8":
                category = "int8 weights"
            elif role.get(t) == "bias" and kind == "INT32":
                category = "int32 biases"
            else:
                category = "other constants"
            parts[category] += size
            elements[category] += n
    for i in range(model.MetadataLength()):
        meta = model.Metadata(i)
        parts["metadata"] += len(meta.Name() or b"")
        if meta.Buffer() not in seen_buffers:
            seen_buffers.add(meta.Buffer())
            parts["metadata"] += _buffer_size(model, buf, meta.Buffer())
    parts["rest (graph, tables, offsets, padding)"] = total - sum(parts.values())
    params = sum(elements.values())
    overhead = {  # what each part adds beyond 1 byte per parameter
        "int32 biases (3 extra bytes each)": parts["int32 biases"] - elements["int32 biases"],
        "other constants beyond 1 B/element": parts["other constants"] - elements["other constants"],
        **{k: parts[k] for k in CATEGORIES[3:]},
        "int8 weights beyond 1 B/element": parts["int8 weights"] - elements["int8 weights"],
    }
    return {"file": str(path), "bytes": total, "params": params, "elements": elements, "parts": parts,
            "bytes_per_param": total / params, "overhead_vs_1_byte_per_param": (total - params) / params,
            "overhead_bytes": overhead}


def count_macs(path: Path) -> dict:
    """Multiply-accumulates of one inference (batch as stored), from the op and tensor shapes."""
    from edgekit.formats.tflite.schema import load_model

    schema, model, _ = load_model(Path(path))
    subgraph = model.Subgraphs(0)

    def shape(t):
        return [max(1, int(d)) for d in subgraph.Tensors(t).ShapeAsNumpy()]

    by_op: dict[str, int] = {}
    for name, inputs, outputs in _ops(schema, model, subgraph):
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") or len(inputs) < 2:
            continue
        out, w = shape(outputs[0]), shape(inputs[1])
        if name == "CONV_2D":  # filter [O, kh, kw, I], output [N, H, W, O]
            macs = math.prod(out) * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, C*M], output [N, H, W, C*M]
            macs = math.prod(out) * w[1] * w[2]
        else:  # weights [O, I], output [rows, O]
            macs = math.prod(out) * w[-1]
        by_op[name] = by_op.get(name, 0) + macs
    return {"macs": sum(by_op.values()), "by_op": by_op}


def cpu_peak() -> dict:
    """A rough single-core peak of int8 and fp32 multiply-accumulates per second, from /proc/cpuinfo.

    int8: AVX-512 VNNI's VPDPBUSD multiplies 64 u8×s8 pairs into 16 int32 lanes per 512-bit
    instruction (AVX-VNNI: 32 per 256-bit instruction; plain AVX2 needs VPMADDUBSW + VPMADDWD +
    VPADDD for 32 products, counted as ~16 per instruction slot). fp32: one FMA does 16 (AVX-512) or
    8 (AVX2) multiply-adds. Instructions per cycle: 2 on AMD family 26 (Zen 5: two 512-bit multiply
    pipes, full width), 1 for 512-bit on family 25 (Zen 4 splits them in two 256-bit halves) and 2 for
    256-bit; 1 for 512-bit VNNI and 2 for FMA on Intel. Clock: "cpu MHz" (in a VM this is the nominal
    / TSC rate; the core may boost well above it). Rough by a factor of ~2: the boost clock, the
    issue rate and XNNPACK's use of VNNI are all assumed, not measured."""
    info = cpuinfo()
    flags = set(info.get("flags", "").split())
    mhz = float(info.get("cpu MHz", "0") or 0)
    vendor, family = info.get("vendor_id", "?"), int(info.get("cpu family", "0") or 0)
    amd = vendor == "AuthenticAMD"
    if "avx512_vnni" in flags:
        int8_per_instr, isa, width = 64, "AVX-512 VNNI (VPDPBUSD zmm: 64 u8×s8 MACs)", 512
    elif "avx_vnni" in flags:
        int8_per_instr, isa, width = 32, "AVX-VNNI (VPDPBUSD ymm: 32 MACs)", 256
    elif "avx2" in flags:
        int8_per_instr, isa, width = 16, "AVX2 (VPMADDUBSW+VPMADDWD+VPADDD: ~16 MACs per slot)", 256
    else:
        int8_per_instr, isa, width = 8, "SSE (~8 MACs per slot)", 128
    fp32_per_instr = 16 if "avx512f" in flags else 8 if "fma" in flags else 4
    if width == 512:
        int8_ipc = 2 if (amd and family >= 26) else 1
        fp32_ipc = 2 if (not amd or family >= 26) else 1
    else:
        int8_ipc = fp32_ipc = 2
    ghz = mhz / 1000
    return {
        "cpu": info.get("model name", "?"), "vendor": vendor, "family": family, "mhz": mhz, "isa": isa,
        "int8_macs_per_cycle": int8_per_instr * int8_ipc, "fp32_macs_per_cycle": fp32_per_instr * fp32_ipc,
        "int8_peak_gmacs": int8_per_instr * int8_ipc * ghz, "fp32_peak_gmacs": fp32_per_instr * fp32_ipc * ghz,
        "flags_used": sorted(flags & {"avx512_vnni", "avx_vnni", "avx512f", "avx2", "fma"}),
    }



def measured_peak() -> dict | None:
    """The peak measured by benchmarks/peak_microbench.c (clock, VPDPBUSD and FMA rates on one core).

    Needs a C compiler (cc / gcc) and an AVX-512 VNNI CPU; None otherwise (the estimate stands alone)."""
    import json
    import shutil
    import subprocess

    flags = set()
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return None
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler or not {"avx512f", "avx512_vnni", "fma"} <= flags:
        return None
    exe = common.scratch() / "peak_microbench"
    try:
        subprocess.run([compiler, "-O2", "-mavx512f", "-mavx512vnni", "-mfma", "-o", str(exe),
                        str(common.BENCH / "peak_microbench.c")], check=True, capture_output=True, timeout=120)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=300).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError):
        return None

def _models(quick: bool) -> list[tuple[str, Path, Path]]:
    """(label, float .tflite, int8 .tflite) of the models this section measures."""
    _, run_dir, _ = common.quickstart_run()
    models = [("digits cnn_small (quickstart, 8×8×1)", run_dir / "baseline.tflite", run_dir / "model.tflite")]
    for arch in (("cnn_small",) if quick else tuple(common.CONV32_ARCHS)):
        _, conv_dir, _ = common.conv32_run(arch, quick)
        models.append((f"{arch} (32×32×3)", conv_dir / "baseline.tflite", conv_dir / "model.tflite"))
    return models


def run(quick: bool = False) -> dict:
    peak = cpu_peak()
    reps, runs, warmup = (1, 50, 5) if quick else (3, 200, 20)
    sizes, speeds = [], []
    for label, float_path, int8_path in _models(quick):
        size = size_breakdown(int8_path)
        size["model"] = label
        sizes.append(size)
        for precision, path in (("float32", float_path), ("int8", int8_path)):
            macs = count_macs(path)
            latency = common.p50(path, "litert", 1, reps=reps, warmup=warmup, runs=runs)
            achieved = macs["macs"] / (latency["p50_ms"] / 1e3) / 1e9
            peak_gmacs = peak["int8_peak_gmacs"] if precision == "int8" else peak["fp32_peak_gmacs"]
            speeds.append({"model": label, "precision": precision, "macs": macs["macs"], "macs_by_op": macs["by_op"],
                           "p50_ms": latency["p50_ms"], "p50_reps_ms": latency["p50_reps_ms"],
                           "achieved_gmacs": round(achieved, 2), "peak_gmacs": round(peak_gmacs, 1),
                           "fraction_of_peak": round(achieved / peak_gmacs, 4) if peak_gmacs else None})
    measured = measured_peak()
    peak["measured"] = measured
    for s in speeds:
        key = "int8_gmacs" if s["precision"] == "int8" else "fp32_gmacs"
        s["measured_peak_gmacs"] = measured[key] if measured else None
        s["fraction_of_measured_peak"] = round(s["achieved_gmacs"] / measured[key], 4) if measured else None
    return {"title": "Against the limit: bytes per parameter and MAC/s against the CPU's peak",
            "sizes": sizes, "speeds": speeds, "cpu_peak": peak, "targets": [],
            "table": _tables(sizes, speeds, peak, reps, runs), "notes": _notes(peak)}


def _tables(sizes, speeds, peak, reps, runs) -> str:
    size_rows = []
    for s in sizes:
        p = s["parts"]
        size_rows.append([s["model"], f"{s['params']:,}", f"{s['bytes']:,}", f"{s['bytes_per_param']:.3f}",
                          pct(s["overhead_vs_1_byte_per_param"], 1)] + [f"{p[c]:,}" for c in CATEGORIES])
    size_table = md_table(["int8 .tflite", "params", "bytes", "bytes/param", "overhead vs 1 B/param"]
                          + list(CATEGORIES), size_rows, "l" + "r" * (4 + len(CATEGORIES)))
    where = []
    for s in sizes:
        extra = s["bytes"] - s["params"]
        parts = sorted(((k, v) for k, v in s["overhead_bytes"].items() if v), key=lambda kv: -kv[1])
        where.append(f"- {s['model']}: {extra:,} bytes above 1 B/param = "
                     + ", ".join(f"{k} {v:,} ({100 * v / extra:.0f}%)" for k, v in parts))
    measured = peak.get("measured")
    speed_rows = [[s["model"], s["precision"], f"{s['macs'] / 1e6:.2f} M", common.fmt_ms(s["p50_ms"]),
                   f"{s['achieved_gmacs']:.1f}", f"{s['peak_gmacs']:.0f}", pct(s["fraction_of_peak"], 1),
                   f"{s['measured_peak_gmacs']:.0f}" if measured else "-", pct(s["fraction_of_measured_peak"], 1)]
                  for s in speeds]
    speed_table = md_table(["model", "precision", "MACs / inference", "LiteRT p50 ms (1 thread)", "achieved GMAC/s",
                            f"estimated peak GMAC/s ({peak['mhz']:.0f} MHz)", "of estimate",
                            "measured peak GMAC/s", "of measured"], speed_rows, "ll" + "r" * 7)
    return (size_table + "\n\nWhere the bytes above 1 byte/parameter go:\n\n" + "\n".join(where)
            + f"\n\nLatency against the CPU's peak (p50 median of {reps} × {runs} runs, batch 1):\n\n" + speed_table)


def _notes(peak: dict) -> list[str]:
    measured = peak.get("measured")
    notes = [
        f"Estimated peak: {peak['isa']}; assumed {peak['int8_macs_per_cycle']} int8 MACs/cycle and "
        f"{peak['fp32_macs_per_cycle']} fp32 MACs/cycle on one core (AMD family {peak['family']}: two 512-bit "
        f"multiply pipes), × {peak['mhz']:.0f} MHz ('cpu MHz' in /proc/cpuinfo) = {peak['int8_peak_gmacs']:.0f} "
        f"int8 GMAC/s, {peak['fp32_peak_gmacs']:.0f} fp32 GMAC/s. See limits.cpu_peak for the reasoning. Rough: in a "
        "VM 'cpu MHz' is the nominal (TSC) rate, not the boost clock, and the issue rate is assumed.",
    ]
    if measured:
        est_clock = peak["mhz"] / 1000
        notes.append(
            f"Measured peak (benchmarks/peak_microbench.c, best of 5): the core runs at {measured['clock_ghz']:.2f} GHz "
            f"(a chain of dependent 1-cycle adds), 12 independent VPDPBUSD zmm chains give {measured['int8_gmacs']:.0f} "
            f"int8 GMAC/s ({measured['int8_gmacs'] / measured['clock_ghz']:.0f} MACs/cycle) and VFMADD zmm chains "
            f"{measured['fp32_gmacs']:.0f} fp32 GMAC/s ({measured['fp32_gmacs'] / measured['clock_ghz']:.0f} MACs/cycle). "
            f"So the per-cycle assumption holds and the estimate is low by the clock: "
            f"{measured['clock_ghz'] / est_clock:.2f}× (boost {measured['clock_ghz']:.2f} GHz vs {est_clock:.2f} GHz "
            "reported). The measured figure is the better ceiling.")
    else:
        notes.append("No measured peak (needs a C compiler and an AVX-512 VNNI CPU): the estimate alone, rough by ~2×.")
    notes += [
        "MACs count CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED only (pooling, adds, activations, "
        "(de)quantization are left out), so achieved MAC/s slightly understates the work done.",
        "Quantization parameters: one float32 scale and one int64 zero point per output channel of every "
        "per-channel weight and bias tensor, and one of each per activation tensor; the int64 zero points "
        "are two thirds of those bytes.",
    ]
    return notes


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick)["table"])
