"""PyTorch -> .tflite (LiteRT-Torch, with the recipe's quantization) and -> .onnx (torch.onnx dynamo, float).

The .onnx is always written in float: `edgekit.formats.onnx.quantize` applies the quantization plan to it with
ONNX Runtime afterwards. The file takes NCHW input named `input` with a dynamic batch dimension.

The .tflite gets the plan here (`plan` is a recipe QuantizeConfig, or None for float32):
- int8, io int8: PT2E post-training quantization (LiteRT-Torch's PT2EQuantizer, symmetric int8 weights,
  per-channel unless `per_channel: false`, HistogramObserver activations calibrated on every
  calibration sample), then `litert_torch.convert(..., quant_config=QuantConfig(pt2e_quantizer=...))`.
  LiteRT-Torch always folds the edge QUANTIZE/DEQUANTIZE into the model's inputs and outputs, so
  this gives int8 inputs and outputs and has no option for anything else (litert-torch issue #670).
- int8, io float32 | uint8: the float .tflite is quantized with AI Edge Quantizer (the quantizer
  LiteRT-Torch itself uses for its recipes; static int8, per-channel unless `per_channel: false`,
  activation ranges the min/max over every calibration sample),
  whose recipe can leave the model's INPUT/OUTPUT tensors float (QUANTIZE/DEQUANTIZE at the edges)
  or make them uint8 (QUANTIZE uint8<->int8 at the edges), as TF's converter does for Keras.
- dynamic: PT2E with `is_dynamic=True`: int8 weights, activations quantized inside the kernels at run
  time (TFLite hybrid FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D), float inputs and outputs.
- float16: LiteRT-Torch's fp16 recipe (float16 weights behind DEQUANTIZE ops, float32 compute and I/O).
- quantization-aware models (a convert_pt2e'd module, passed with the PT2EQuantizer it was trained
  with, `artifact.qat.quantizer`) are converted with that quantizer and no further calibration; LiteRT-Torch
  gives them int8 inputs and outputs only (UNSUPPORTED_QAT_IO).

`calibration` holds channels-last (NHWC) float samples; the first one is the example input that
fixes the .tflite's shapes. LiteRT-Torch cannot lower a dynamic batch through a flatten/view, so the
.tflite has a fixed batch (1, or the batch a torch.export teacher was specialised to), and LiteRT
cannot resize it (the RESHAPE targets are constants): runtimes feed it one sample at a time.
`channels_last=True` wraps the model in `litert_torch.to_channel_last_io` so the .tflite takes NHWC
images (the transpose is folded into the graph); it applies to 4-D image inputs only.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from edgekit.errors import StageError
from edgekit.quiet import debugging, native_stderr_silenced, quiet_python_loggers
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.layout import to_nchw
from edgekit.backends.torch.train import set_mode, static_batch

ONNX_OPSET = 18  # the dynamo exporter's own opset (>= 17, which ONNX Runtime's quantizer needs)
INPUT_NAME = "input"
OUTPUT_NAME = "output"
CALIBRATION_BATCH = 32  # samples per PT2E calibration call when the batch dimension can be dynamic
EXTERNAL_DATA_BYTES = 1 << 30  # weights above this go to `<name>.onnx.data` (protobuf's 2 GB limit)

# Plans this writer cannot produce for a .tflite (checked when the recipe is validated). Empty: every
# precision and every io of post-training quantization is produced (see the module docstring).
UNSUPPORTED_PRECISIONS: dict[str, str] = {}
UNSUPPORTED_IO: dict[str, str] = {}
# Quantization-aware models: the trained quantizer goes through LiteRT-Torch, whose I/O is int8.
UNSUPPORTED_QAT_IO: dict[str, str] = {
    "float32": "LiteRT-Torch converts a quantization-aware torch model with int8 inputs and outputs "
               "and has no option for float32 ones; use io: int8",
    "uint8": "LiteRT-Torch converts a quantization-aware torch model with int8 inputs and outputs "
             "and has no option for uint8 ones; use io: int8",
}


# ---- quiet conversions ---------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence LiteRT-Torch's progress lines (stdout), torch.onnx's status lines and native logs."""
    if debugging():
        yield
        return
    with native_stderr_silenced(), contextlib.redirect_stdout(io.StringIO()):
        try:
            yield
        finally:
            quiet_python_loggers()


def _litert_torch():
    if not debugging():
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    with _quiet():
        import litert_torch
    return litert_torch


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the conversion; the caller's module gets its own mode back afterwards."""
    was_training = bool(getattr(model, "training", False))
    set_mode(model, False)
    try:
        yield
    finally:
        if was_training:
            set_mode(model, True)


def _fail(what: str, exc: Exception) -> StageError:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return StageError("export", f"{what} failed: {text[:600]}")


# ---- example input and calibration samples -------------------------------------------------------

def _placeholder_shape(model: nn.Module) -> Optional[tuple[int, ...]]:
    """The first input's static shape recorded in a torch.export / PT2E graph, if any."""
    graph = getattr(model, "graph", None)
    for node in getattr(graph, "nodes", ()):
        if node.op == "placeholder":
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is not None and all(isinstance(d, int) for d in shape):
                return tuple(int(d) for d in shape)
            return None
    return None


def _samples(model: nn.Module, calibration: Optional[np.ndarray], channels_last: bool) -> np.ndarray:
    """Model-layout float32 samples: NCHW for torch, or NHWC as given when `channels_last`."""
    if calibration is None or not len(calibration):
        shape = _placeholder_shape(model)
        if shape is None:
            raise StageError("export", f"exporting '{type(model).__name__}' needs an example input (the "
                                       "calibration samples) to trace the model with, and none was given")
        x = np.zeros((1,) + shape[1:], np.float32)
        return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))) if channels_last and x.ndim == 4 else x
    x = np.asarray(calibration, dtype=np.float32)
    return np.ascontiguousarray(x) if channels_last and x.ndim == 4 else to_nchw(x)


def _batches(samples: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """`samples` in batches of exactly `batch` (a short last batch is filled with its own samples)."""
    for i in range(0, len(samples), batch):
        chunk = samples[i:i + batch]
        if len(chunk) < batch:
            chunk = np.resize(chunk, (batch,) + chunk.shape[1:])
        yield np.ascontiguousarray(chunk)


def _example(model: nn.Module, samples: np.ndarray) -> "torch.Tensor":
    """The first sample (or the first batch a fixed-batch model needs) as a tensor."""
    batch = static_batch(model) or 1
    return torch.from_numpy(next(_batches(samples[:batch], batch)))


def _is_script(model) -> bool:
    return isinstance(model, (torch.jit.ScriptModule, torch.jit.ScriptFunction))


def _exportable(model: nn.Module, example) -> nn.Module:
    """`model`, or for TorchScript (which torch.export cannot trace) its torch.export twin, traced
    with `example` (so fixed to its batch size)."""
    if not _is_script(model):
        return model
    from torch._export.converter import TS2EPConverter

    module = TS2EPConverter(model, (example,)).convert().module()
    set_mode(module, False)
    return module


# ---- .tflite -------------------------------------------------------------------------------------

def _calibration_graph(model: nn.Module, example, batch: int):
    """The exported graph PT2E observes and the batch to feed it: a dynamic batch when torch.export
    allows one (calibrating 32 samples a call is several times faster than one at a time), else
    the example's fixed batch. LiteRT-Torch re-exports the converted module with the example's shape."""
    if static_batch(model) is None:
        pair = torch.cat([example, example])
        dims = {0: torch.export.Dim("batch", min=1, max=1 << 16)}
        for shapes in (({0: dims[0]},), ((dims,),)):  # forward(x) | forward(*args) (channels-last wrapper)
            try:
                return torch.export.export(model, (pair,), dynamic_shapes=shapes).module(), CALIBRATION_BATCH
            except Exception:
                continue
    return torch.export.export(model, (example,)).module(), batch


def _pt2e(model: nn.Module, example, samples: np.ndarray, per_channel: bool, dynamic: bool, batch: int):
    """PT2E post-training quantization: (the convert_pt2e'd module, its PT2EQuantizer)."""
    from litert_torch.quantize import pt2e_quantizer as pq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = pq.PT2EQuantizer().set_global(
        pq.get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic))
    if dynamic:  # no activation observers: one pass sets the weight observers
        graph, chunks = torch.export.export(model, (example,)).module(), [example.numpy()]
    else:  # every sample calibrates the activation ranges
        graph, step = _calibration_graph(model, example, batch)
        if step == batch:
            chunks = _batches(samples, step)
        else:
            chunks = (samples[i:i + step] for i in range(0, len(samples), step))
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for chunk in chunks:
            prepared(torch.from_numpy(np.ascontiguousarray(chunk)))
    converted = convert_pt2e(prepared, fold_quantize=False)
    set_mode(converted, False)
    return converted, quantizer


def _edge_recipe(plan):
    """AI Edge Quantizer recipe manager: static int8 everywhere, `plan.io` on the model's inputs/outputs."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if plan.per_channel else qtyping.QuantGranularity.TENSORWISE
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8,
                              weight_granularity=granularity)
    if plan.io == "float32":
        for op in (ops.INPUT, ops.OUTPUT):
            manager.add_quantization_config(".*", op, algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    elif plan.io == "uint8":
        edge = qtyping.OpQuantizationConfig(
            activation_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=8, symmetric=False, dtype=qtyping.TensorDataType.UINT),
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=8, symmetric=True, granularity=granularity),
            compute_precision=qtyping.ComputePrecision.INTEGER, explicit_dequantize=False)
        for op in (ops.INPUT, ops.OUTPUT):
            manager.add_quantization_config(".*", op, op_config=edge)
    return manager


def _edge_quantize(float_tflite: bytes, samples: np.ndarray, batch: int, plan) -> bytes:
    """Full-integer quantization of a float .tflite with AI Edge Quantizer, calibrated on `samples`.

    The ranges are the plain min/max over all samples: the quantizer's default moving average of
    per-sample extremes (factor 0.95) clips the activations of a batch-1 model badly."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, quantizer
    from ai_edge_quantizer.utils import qsv_utils

    signatures = Interpreter(model_content=float_tflite).get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    manager = _edge_recipe(plan)
    ranges = calibrator.Calibrator(float_tflite, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    ranges.calibrate({key: [{name: chunk} for chunk in _batches(samples, batch)]}, manager)
    engine = quantizer.Quantizer(bytearray(float_tflite), manager.get_quantization_recipe())
    result = engine.quantize(ranges.get_model_qsvs(), enable_progress_report=False)
    return bytes(result.quantized_model)


def _tflite_bytes(model: nn.Module, plan, samples: np.ndarray, channels_last: bool, quantizer) -> bytes:
    litert_torch = _litert_torch()
    from litert_torch.quantize.quant_config import QuantConfig

    batch = static_batch(model) or 1
    example = _example(model, samples)
    wrap = channels_last and samples.ndim == 4
    model = _exportable(model, example.permute(0, 3, 1, 2).contiguous() if wrap else example)  # traced in NCHW
    module = model
    if wrap:
        module = litert_torch.to_channel_last_io(model, args=[0])
        module.training = False  # `model` is in eval mode already; .eval() would recurse into exported graphs
    def convert(m, quant_config=None) -> bytes:
        return bytes(litert_torch.convert(m, (example,), quant_config=quant_config).model_content())

    if quantizer is not None:  # quantization-aware: the trained quantization, no calibration
        return convert(module, QuantConfig(pt2e_quantizer=quantizer))
    if plan is None:
        return convert(module)
    if plan.precision == "float16":
        from litert_torch.generative.quantize import quant_recipes

        return convert(module, quant_recipes.full_fp16_recipe())
    if plan.precision == "dynamic":
        converted, quantizer = _pt2e(module, example, samples, plan.per_channel, True, batch)
        return convert(converted, QuantConfig(pt2e_quantizer=quantizer))
    if plan.io == "int8":
        converted, quantizer = _pt2e(module, example, samples, plan.per_channel, False, batch)
        return convert(converted, QuantConfig(pt2e_quantizer=quantizer))
    return _edge_quantize(convert(module), samples, batch, plan)


def _check_plan(model: nn.Module, plan, quantizer) -> None:
    quantization_aware = quantizer is not None
    if plan is None:
        return
    if plan.quantization_aware and not quantization_aware:
        raise StageError("export", f"quantize.method: qat, but '{type(model).__name__}' comes with no trained "
                                   "quantizer; post-training quantization would not be what the recipe asked for")
    if plan.precision in UNSUPPORTED_PRECISIONS:
        raise StageError("export", f"precision: {plan.precision} for a torch .tflite: "
                                   f"{UNSUPPORTED_PRECISIONS[plan.precision]}")
    unsupported = UNSUPPORTED_QAT_IO if quantization_aware else UNSUPPORTED_IO
    if plan.precision == "int8" and plan.io in unsupported:
        raise StageError("export", f"io: {plan.io} for a torch .tflite: {unsupported[plan.io]}")


def to_tflite(model: nn.Module, path: Path, plan=None, calibration: Optional[np.ndarray] = None,
              channels_last: bool = False, quantizer=None) -> Path:
    """Convert `model` with LiteRT-Torch, quantized as `plan` says, and write `path`. A
    quantization-aware model comes with the PT2E `quantizer` it was trained with."""
    _check_plan(model, plan, quantizer)
    needs_samples = plan is not None and plan.precision == "int8" and quantizer is None
    if needs_samples and (calibration is None or not len(calibration)):
        raise StageError("export", "int8 quantization needs calibration samples (data.calibration_samples)")
    samples = _samples(model, calibration, channels_last)
    what = "float32" if plan is None else plan.precision
    if quantizer is not None:
        what = "quantization-aware int8"
    try:
        with _eval_mode(model), _quiet():
            content = _tflite_bytes(model, plan, samples, channels_last, quantizer)
    except StageError:
        raise
    except Exception as exc:  # torch.export, PT2E, the MLIR lowering and the quantizer raise many types
        raise _fail(f"LiteRT-Torch {what} conversion of '{type(model).__name__}' to .tflite", exc) from exc
    Path(path).write_bytes(content)
    return Path(path)


# ---- .onnx ---------------------------------------------------------------------------------------

def _param_bytes(model: nn.Module) -> int:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _onnx_export(model: nn.Module, example, path: Path, dynamic: bool) -> None:
    kwargs = {}
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},)
    torch.onnx.export(
        model, (example,), str(path), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=ONNX_OPSET, external_data=_param_bytes(model) > EXTERNAL_DATA_BYTES, **kwargs,
    )


def _onnx_export_script(model, example, path: Path) -> None:
    """TorchScript through torch.onnx's TorchScript exporter, the one that reads ScriptModules."""
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=ONNX_OPSET, dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )


def to_onnx(model: nn.Module, path: Path, plan=None, calibration: Optional[np.ndarray] = None,
            channels_last: bool = False, quantizer=None) -> Path:
    """torch.onnx (dynamo) export in float, NCHW input `input` with a dynamic batch, output `output`.

    `plan` is applied afterwards by ONNX Runtime (edgekit.formats.onnx.quantize); `channels_last` concerns the
    .tflite only. A model fixed to one batch size (a torch.export teacher without a dynamic batch), or
    one whose graph specialises the batch, is exported with that fixed batch instead. TorchScript
    goes through torch.onnx's TorchScript exporter (dynamic batch), else through its torch.export twin."""
    samples = _samples(model, calibration, False)
    fixed = static_batch(model)
    path = Path(path)
    try:
        with _eval_mode(model), _quiet():
            example = _example(model, samples)
            if _is_script(model):
                try:
                    _onnx_export_script(model, example, path)
                    return path
                except Exception:
                    model = _exportable(model, example)
            elif fixed is None:
                # torch.export specialises a batch of 1, so trace a batch of 2 for a dynamic dimension
                try:
                    _onnx_export(model, torch.from_numpy(next(_batches(samples[:2], 2))), path, dynamic=True)
                    return path
                except Exception:
                    pass  # the graph ties the batch to one size: export that size below
            _onnx_export(model, example, path, dynamic=False)
    except StageError:
        raise
    except Exception as exc:
        raise _fail(f"ONNX export (torch.onnx) of '{type(model).__name__}'", exc) from exc
    return path


WRITERS = {"tflite": to_tflite, "onnx": to_onnx}

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "UNSUPPORTED_IO", "UNSUPPORTED_PRECISIONS",
           "UNSUPPORTED_QAT_IO", "WRITERS", "to_onnx", "to_tflite"]
