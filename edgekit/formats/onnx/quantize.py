"""Quantize a float .onnx with ONNX Runtime, following the precision plan (`PLANS`, by plan class).

- int8: static QDQ quantization (int8 weights and activations), calibrated on the same calibration
  samples the .tflite used, as the plan's `calibration` says (`edgekit.formats.onnx.calibration`),
  per-channel weights unless `per_channel: false`. The activation type and the ops
  quantized are chosen by timing a few candidates on ONNX Runtime (`edgekit.formats.onnx.tuning`);
  LSTMs, which static QDQ leaves float, get int8 weights by dynamic quantization in the same file
  (`edgekit.formats.onnx.recurrent`). The measured choice goes to the report (`quantize_onnx`'s
  `facts`).
- int16x8: static QDQ with int16 activations and int8 weights (ONNX Runtime runs them in float
  between 16-bit QuantizeLinear / DequantizeLinear: as small as int8, more accurate, not faster).
- Per-layer overrides (`plan.layers`: keep_float / overrides): `edgekit.formats.onnx.layers`.
- dynamic: int8 weights, activations quantized at run time (`quantize_dynamic`).
- float16: weights and compute in float16, float32 inputs and outputs kept.

The model keeps float32 inputs and outputs in every case (QDQ), which ONNX Runtime users expect;
`io:` applies to the .tflite only, and the model card says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgekit.errors import StageError
from edgekit.formats.onnx.recurrent import quantize_recurrent, recurrent_ops
from edgekit.formats.onnx.recurrent import note as recurrent_note
from edgekit.formats.onnx.compact import compact
from edgekit.formats.onnx.calibration import label
from edgekit.formats.onnx.tuning import INT16X8, choose, input_name, prepare, quantize
from edgekit.precision import Dynamic, Float16, Int8, Int16x8, Plan
from edgekit.quiet import native_stderr_silenced


def _int8(source: Path, target: Path, plan, calibration: np.ndarray, threads: int = 1) -> dict:
    """The measured static QDQ variant (`tuning.choose`), with int8 recurrent weights; returns the record."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        how = prepare(source, prepared)
        found = recurrent_ops(prepared)
        finish = quantize_recurrent if found else None
        record = choose(prepared, target, source, plan, calibration, threads, finish)
    record.update(prepared=how, recurrent=recurrent_note(found))
    if plan.layers:
        record["layers"] = dict(plan.layers)
    return record


def _int16x8(source: Path, target: Path, plan, calibration: np.ndarray, threads: int = 1) -> dict:
    """Static QDQ with 16-bit activations and 8-bit weights (ORT raises the opset to 21 for 16-bit
    QuantizeLinear); ORT's CPU provider has no int16 kernels, so there is no variant to time."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        how = prepare(source, prepared)
        found = recurrent_ops(prepared)
        quantize(prepared, target, INT16X8, plan, input_name(prepared), calibration)
        if found:
            quantize_recurrent(target)
        compact(target)
    record = {"method": label(plan) + ", int16 activations, int8 weights",
              "chosen": INT16X8.name, "per_channel": plan.per_channel, "prepared": how,
              "recurrent": recurrent_note(found)}
    if plan.layers:
        record["layers"] = dict(plan.layers)
    return record


def _dynamic(source: Path, target: Path, plan, calibration: np.ndarray, threads: int = 1) -> None:
    """quantize_dynamic; a model with recurrent ops is pre-processed first, which folds a torch LSTM's
    reordered weights into the constants the dynamic LSTM quantizer needs."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        if recurrent_ops(source):
            prepared = Path(tmp) / "prepared.onnx"
            prepare(source, prepared)
            source = prepared
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=plan.per_channel)


def _float16(source: Path, target: Path, plan, calibration: np.ndarray, threads: int = 1) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


#: plan class -> ONNX Runtime quantization realizing it (the same for every framework's float file)
PLANS: dict[type[Plan], Callable[..., Optional[dict]]] = {
    Int8: _int8, Int16x8: _int16x8, Dynamic: _dynamic, Float16: _float16,
}


def quantize_onnx(source: Path, target: Path, plan, calibration: np.ndarray, threads: int = 1,
                  facts: Optional[dict] = None) -> Path:
    """Write the quantized form of the float model `source` to `target`; int8 candidates are timed
    with `threads` threads (the recipe's latency setting) and their record is put in
    `facts["quantization_choice"]`."""
    try:
        with native_stderr_silenced():
            record = PLANS[type(plan)](Path(source), Path(target), plan, calibration, threads)
    except StageError:
        raise
    except Exception as exc:
        raise StageError("export", f"ONNX Runtime {plan.precision} quantization of {Path(source).name} "
                                   f"failed: {str(exc).strip()[:600]}") from exc
    if record is not None and facts is not None:
        facts["quantization_choice"] = record
    return Path(target)

