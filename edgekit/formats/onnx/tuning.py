"""Choose how an .onnx file is statically quantized by what ONNX Runtime then runs fastest on this CPU.

ONNX Runtime's CPU provider turns DequantizeLinear -> op -> QuantizeLinear into an integer kernel
(QLinearConv, QLinearMatMul, QGemm, QLinearAdd, ...) only for some ops and types: on x86, int8
(S8S8) activations leave Add, Mul and depthwise Conv in float between Q/DQ pairs, which makes an
int8 MobileNetV2 or Transformer slower than its float file, while uint8 activations with int8
weights (U8S8, ORT's documented x86 default) fuse them. Which variant wins depends on the CPU and
the model, so a few candidates (`CANDIDATES`) are quantized and timed on the calibration samples
(batch 1, the recipe's thread count), against the float file, and the fastest is kept. The same
model on the same CPU must give the same file, so the first candidate is kept unless another is
clearly faster: below `MARGIN` x its p50 in at least `WINS_NEEDED` of `ROUNDS` timing rounds. Every
file is timed once a round, so a burst of load on the machine slows all of them alike instead of
making one look faster (a single 0.3 s window per file once let a 0.3% slower variant win on a busy
CI machine). Each candidate is also described by the ops ONNX Runtime's optimized graph
then runs: integer kernels, and the weight-bearing ops left in float.

The choice, every candidate's p50 and bytes and why one was kept, is returned as a dict that the
exporter hands to the report (`quantization_choice` of the artifact entry) and the model card. It is
not stored in the file: its timings differ from run to run, and the same model must give the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.formats.onnx.calibration import label, static_arguments
from edgekit.formats.onnx.compact import compact
from edgekit.formats.onnx.layers import quantizer_options
from edgekit.formats.onnx.saturation import WHY, cpu_flags, saturates, unsaturate_file

MARGIN = 0.9  # another candidate replaces the kept one only when its p50 is below MARGIN x the kept one's
ROUNDS, WINS_NEEDED = 7, 6  # ... in at least WINS_NEEDED of ROUNDS rounds
TIMING_SECONDS = 0.35  # per file over all rounds, after warm-up: MIN_RUNS a round for a big model
WARMUP, MIN_RUNS, MAX_RUNS = 5, 2, 1000  # MIN_RUNS, MAX_RUNS: per file and round
WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# ops of ORT's optimized CPU graph that compute with int8 weights (QDQ fusions and dynamic quantization)
INTEGER_KERNELS = {"QGemm", "QAttention", "MatMulInteger", "ConvInteger", "MatMulIntegerToFloat",
                   "DynamicQuantizeMatMul", "DynamicQuantizeLSTM"}
# weight-bearing float ops ORT may leave (or fuse into) in its optimized CPU graph
FLOAT_COMPUTE = {"Conv", "ConvTranspose", "FusedConv", "NchwcConv", "MatMul", "FusedMatMul", "Gemm",
                 "FusedGemm", "LSTM", "GRU", "RNN", "Attention", "MultiHeadAttention", "Einsum"}


@dataclass(frozen=True)
class Candidate:
    """One static QDQ configuration: activation type, and whether only weight ops are quantized
    (Conv / Gemm / MatMul with a constant weight; activation x activation MatMuls and the rest stay
    float, which saves the Q/DQ pairs around ops that have no integer kernel)."""

    name: str
    activations: str  # "uint8" | "int8" | "int16"
    weights_only: bool = False
    weights: str = "int8"  # "int8" | "uint8" (`edgekit.formats.onnx.saturation`)


#: the single configuration of an int16x8 plan: nothing to choose, ORT has no int16 kernels to time
INT16X8 = Candidate("A16W8", "int16")

CANDIDATES = (
    Candidate("U8S8", "uint8"),
    Candidate("S8S8", "int8"),
    Candidate("U8S8 weight ops only", "uint8", weights_only=True),
)
#: the candidates where ONNX Runtime's int8-weight kernels saturate (`saturation.saturates`): the same
#: int8 weights stored as uint8 (exactly), run by U8U8 kernels; S8S8 has no such form
UNSATURATED = (
    Candidate("U8U8", "uint8", weights="uint8"),
    Candidate("U8U8 weight ops only", "uint8", weights_only=True, weights="uint8"),
)


def candidates() -> tuple[Candidate, ...]:
    """The int8 candidates for this CPU: `UNSATURATED` where int8 weights would saturate, else `CANDIDATES`."""
    return UNSATURATED if saturates() else CANDIDATES


class Calibration:
    """ONNX Runtime's CalibrationDataReader over a numpy array, one sample at a time."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self._feeds = iter([{input_name: samples[i:i + 1].astype(np.float32)} for i in range(len(samples))])

    def get_next(self):
        return next(self._feeds, None)

    def rewind(self):  # required by newer ORT readers; calibration reads the data once
        pass

    def __iter__(self):  # qdq_loss_debug.collect_activations iterates its reader
        return iter(self.get_next, None)


def input_name(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def prepare(source: Path, target: Path) -> str:
    """`quant_pre_process` (shape inference, constant folding, ORT's basic fusions such as Conv+BN),
    which also folds a torch LSTM's reordered weights into constants; the source as it is when it
    cannot run. Returns how the file was prepared, for the record."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
        return "quant_pre_process"
    except Exception as exc:  # pre-processing only optimises; quantize the original when it cannot run
        shutil.copyfile(source, target)
        return f"none (quant_pre_process failed: {type(exc).__name__})"


def _excluded(path: Path, candidate: Candidate) -> list[str]:
    """Nodes a weights-only candidate leaves float: MatMuls whose second input is not a constant."""
    if not candidate.weights_only:
        return []
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and (len(n.input) < 2 or n.input[1] not in constants)]


def quantize(prepared: Path, target: Path, candidate: Candidate, plan, name: str, calibration: np.ndarray,
             ranges: Path | None = None) -> None:
    """Static QDQ quantization of `prepared` to `target` as `candidate` says, its activation ranges
    calibrated on `calibration` as the plan says (`edgekit.formats.onnx.calibration`; cached in the
    folder `ranges` when given, for the other variants of `prepared`), per-channel
    weights unless the plan says otherwise, and the plan's per-layer precisions
    (`edgekit.formats.onnx.layers`)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    activation = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8, "int16": QuantType.QInt16}[candidate.activations]
    options = quantizer_options(prepared, dict(plan.layers), activation)
    with tempfile.TemporaryDirectory(prefix="edgekit-qdq-") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print their progress
        quantize_static(
            str(prepared), str(target), Calibration(name, calibration),
            quant_format=QuantFormat.QDQ, per_channel=plan.per_channel,
            activation_type=activation, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(WEIGHT_OPS) if candidate.weights_only else None,
            nodes_to_exclude=_excluded(prepared, candidate) + options["nodes_to_exclude"],
            extra_options=options["extra_options"],
            **static_arguments(prepared, plan, Calibration(name, calibration), Path(ranges or tmp)),
        )
    if candidate.weights == "uint8":
        unsaturate_file(target)


class Timed:
    """One file on ONNX Runtime's CPU provider (batch 1, `threads` threads): the ops of its optimized
    graph that run integer kernels or stay float (`int8_kernels`, `float_ops`: op type -> count),
    and its run times, kept per timing round."""

    def __init__(self, path: Path, samples: np.ndarray, threads: int):
        import onnx
        import onnxruntime

        with tempfile.TemporaryDirectory(prefix="edgekit-ort-") as tmp:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = max(1, int(threads))
            options.log_severity_level = 3
            options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            graph = onnx.load(options.optimized_model_filepath, load_external_data=False).graph
        feed_name = self.session.get_inputs()[0].name
        self.feeds = [{feed_name: samples[i:i + 1].astype(np.float32)} for i in range(max(1, min(len(samples), 8)))]
        self.int8_kernels: dict[str, int] = {}
        self.float_ops: dict[str, int] = {}
        for node in graph.node:
            if node.op_type.startswith("QLinear") or node.op_type in INTEGER_KERNELS:
                self.int8_kernels[node.op_type] = self.int8_kernels.get(node.op_type, 0) + 1
            elif node.op_type in FLOAT_COMPUTE:
                self.float_ops[node.op_type] = self.float_ops.get(node.op_type, 0) + 1
        self.rounds: list[list[float]] = []
        for i in range(WARMUP):
            self.session.run(None, self.feeds[i % len(self.feeds)])

    def time_round(self, seconds: float) -> None:
        """Run the file for about `seconds` (MIN_RUNS to MAX_RUNS runs) and keep the times as a round."""
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < MIN_RUNS or (len(times) < MAX_RUNS and time.perf_counter() - started < seconds):
            feed = self.feeds[len(times) % len(self.feeds)]
            t0 = time.perf_counter()
            self.session.run(None, feed)
            times.append(time.perf_counter() - t0)
        self.rounds.append(times)

    @property
    def p50_ms(self) -> float:
        """Median of every run of every round, in ms."""
        return float(np.median([t for times in self.rounds for t in times])) * 1e3

    @property
    def round_p50s_ms(self) -> list[float]:
        return [float(np.median(times)) * 1e3 for times in self.rounds]


def time_together(files: list[Timed]) -> None:
    """`ROUNDS` rounds; in each, every file runs for its share of `TIMING_SECONDS`."""
    for _ in range(ROUNDS):
        for timed in files:
            timed.time_round(TIMING_SECONDS / ROUNDS)


def clearly_faster(challenger: list[float], kept: list[float]) -> bool:
    """Whether the challenger's per-round p50s are below `MARGIN` x the kept file's in at least
    `WINS_NEEDED` rounds (rounds paired by position: timed back to back)."""
    wins = sum(c < MARGIN * k for c, k in zip(challenger, kept))
    return wins >= WINS_NEEDED


def cpu_int8_features() -> list[str]:
    """The CPU's int8 dot-product extensions (x86 VNNI / AMX, Arm dot product / i8mm) from /proc/cpuinfo;
    they decide which activation type ONNX Runtime's integer kernels run fastest."""
    wanted = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    return [flag for flag in wanted if flag in cpu_flags()]


def choose(prepared: Path, target: Path, float_file: Path, plan, calibration: np.ndarray,
           threads: int, finish=None) -> dict:
    """Quantize `prepared` as every candidate (then `finish(path)`, e.g. the recurrent step, when
    given, and `compact`), time them all together with `float_file`, copy the chosen one to `target`
    and return the record."""
    name = input_name(prepared)
    float_bytes = float_file.stat().st_size
    rows: list[dict] = []
    ran: list[tuple[dict, Path, Timed]] = []
    with tempfile.TemporaryDirectory(prefix="edgekit-int8-") as tmp:
        for index, candidate in enumerate(candidates()):
            path = Path(tmp) / f"candidate{index}.onnx"
            try:
                quantize(prepared, path, candidate, plan, name, calibration, ranges=Path(tmp))
                if finish is not None:
                    finish(path)
                compact(path)
                timed = Timed(path, calibration, threads)
            except Exception as exc:  # a variant ORT cannot quantize or load is skipped, and said so
                rows.append({"name": candidate.name, "failed": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            rows.append({"name": candidate.name, "activations": candidate.activations, "weights": candidate.weights,
                         "scope": "weight ops only" if candidate.weights_only else "all supported ops"})
            ran.append((rows[-1], path, timed))
        if not ran:
            raise RuntimeError("every int8 candidate failed: " + "; ".join(r["failed"] for r in rows))
        baseline = Timed(float_file, calibration, threads)
        time_together([baseline] + [timed for _, _, timed in ran])
        kept = ran[0]
        why = (f"{kept[0]['name']} is the first candidate that ran, and no other ran below {MARGIN}x its p50 "
               f"in {WINS_NEEDED} of {ROUNDS} rounds")
        for row, path, timed in ran:
            size = path.stat().st_size
            row.update({"p50_ms": round(timed.p50_ms, 4), "p50_vs_float": round(timed.p50_ms / baseline.p50_ms, 3),
                        "bytes": size, "bytes_vs_float": round(size / float_bytes, 3),
                        "int8_kernels": timed.int8_kernels, "float_ops": timed.float_ops})
            if timed is not kept[2] and clearly_faster(timed.round_p50s_ms, kept[2].round_p50s_ms):
                why = f"{row['name']} ran below {MARGIN}x the p50 of {kept[0]['name']} in {WINS_NEEDED} of {ROUNDS} rounds"
                kept = (row, path, timed)
        shutil.copyfile(kept[1], target)
    return {"method": label(plan), "chosen": kept[0]["name"],
            "why": why + f" on this CPU (1 sample per run, {threads} thread(s))",
            "per_channel": plan.per_channel, "cpu_int8_features": cpu_int8_features(),
            **({"weights": WHY} if saturates() else {}),
            "float_p50_ms": round(baseline.p50_ms, 4), "float_bytes": float_bytes,
            "float_ops_of_float_file": baseline.float_ops, "candidates": rows}
