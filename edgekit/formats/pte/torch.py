"""PyTorch -> .pte: `torch.export`, then ExecuTorch's `to_edge_transform_and_lower` with the XNNPACK
partitioner, quantized as the artifact's plan says.

How each plan is realized (`PLANS`; the plans refused are declared in `edgekit.formats.pte`):
- float32: the exported model lowered as it is.
- int8: PT2E post-training quantization with XNNPACK's own quantizer (`XNNPACKQuantizer`, symmetric
  int8, per-channel weights unless `per_channel: false`), activation ranges the min / max over every
  calibration sample (`minmax_activations`; percentile and entropy are refused); layers the plan
  keeps float (`keep_float`, `overrides: float`) are left out by the quantizer's node filter
  (`set_filter_function`, matching the nodes each module made). int16x8 overrides have no XNNPACK realization: a StageError says so.
- dynamic: the same quantizer with `is_dynamic=True`: int8 weights, activations quantized per run.
- quantization-aware: the convert_pt2e'd QAT model with its weights' quantize ops folded
  (`folded_weights`; its quantize / dequantize pairs are what XNNPACK's partitioner fuses); `edgekit.formats.pte.export` decides
  whether that or XNNPACK PTQ of the QAT-trained float weights ships.

The file takes NCHW input with a static batch of 1 (or the batch a torch.export teacher is fixed
to): ExecuTorch plans memory for fixed shapes, and phone apps run one image at a time; the runtime
feeds one sample at a time. The example input is made contiguous, as XNNPACK's lowering needs.
Calibration runs on a graph exported with a dynamic batch when torch.export allows one (32 samples a
call), then the converted module is exported again at the file's batch for lowering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgekit.backends.torch import conversion
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.train import set_mode, static_batch
from edgekit.errors import StageError
from edgekit.formats.pte import FORMAT
from edgekit.precision import FLOAT_LAYER, Dynamic, Int8, Plan

CALIBRATION_BATCH = 32


def _lower(module, example) -> bytes:
    """torch.export of `module` at `example`'s shape, lowered to XNNPACK: the bytes of the .pte."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    exported = torch.export.export(module, (example,))
    return bytes(to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)


def xnnpack_quantizer(per_channel: bool, dynamic: bool = False, float_layers=()):
    """XNNPACK's PT2E quantizer: symmetric int8, per channel or per tensor, static or dynamic, with
    the modules named in `float_layers` left float."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic)
    if not dynamic:
        config = minmax_activations(config)
    quantizer = XNNPACKQuantizer().set_global(config)
    if float_layers:  # XNNPACK's quantizer has no set_module_name(layer, None): filter the nodes instead
        from torchao.quantization.pt2e.quantizer.utils import get_module_name_filter

        kept = [get_module_name_filter(layer) for layer in float_layers]
        quantizer.set_filter_function(lambda node: not any(made_by(node) for made_by in kept))
    return quantizer


def minmax_activations(config):
    """`config` with its static activation ranges observed by min/max (edgekit's `calibration:
    minmax`, as the .tflite and .onnx files are calibrated) instead of XNNPACK's default
    HistogramObserver, which clips by its own rule (and observes several times slower)."""
    from dataclasses import replace

    from torchao.quantization.pt2e import MinMaxObserver

    def minmax(spec):
        return None if spec is None else replace(spec, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))

    return replace(config, input_activation=minmax(config.input_activation),
                   output_activation=minmax(config.output_activation))


def _calibration_graph(module, example):
    """The graph PT2E observes and the batch to feed it: dynamic when torch.export allows it."""
    if static_batch(module) is None:
        pair = torch.cat([example, example])
        try:
            dims = ({0: torch.export.Dim("batch", min=1, max=1 << 16)},)
            return torch.export.export(module, (pair,), dynamic_shapes=dims).module(), CALIBRATION_BATCH
        except Exception:
            pass
    return torch.export.export(module, (example,)).module(), len(example)


def pt2e(module, example, samples: np.ndarray, quantizer, calibrate: bool):
    """The convert_pt2e'd module of `module` quantized with `quantizer`, observed on every sample of
    `samples` when `calibrate` (one pass on `example` otherwise: dynamic quantization)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if calibrate:
        graph, step = _calibration_graph(module, example)
        chunks = (conversion.batches(samples, step) if step == len(example)
                  else (samples[i:i + step] for i in range(0, len(samples), step)))
    else:
        graph, chunks = torch.export.export(module, (example,)).module(), [example.numpy()]
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for chunk in chunks:
            prepared(torch.from_numpy(np.ascontiguousarray(chunk)))
    converted = convert_pt2e(prepared)
    set_mode(converted, False)
    return converted


def folded_weights(module):
    """A copy of a convert_pt2e'd module with its weights' quantize ops folded into int8 constants.

    edgekit's QAT models are converted with `fold_quantize=False` (what LiteRT-Torch wants), which
    leaves `quantize_per_channel` on each float weight: XNNPACK's partitioner takes only int8
    weights behind a dequantize, so the fold `convert_pt2e` would have done is done here, on a copy
    (the artifact is not changed)."""
    import copy

    from torchao.quantization.pt2e.constant_fold import constant_fold
    from torchao.quantization.pt2e.quantize_pt2e import _quant_node_constraint

    folded = copy.deepcopy(module)
    constant_fold(folded, _quant_node_constraint)
    return folded


def _float32(module, example, samples, plan) -> bytes:
    return _lower(module, example)


def _int8(module, example, samples, plan: Plan) -> bytes:
    if plan.layers_at("int16x8"):
        raise StageError("export", f"quantize.overrides: int16x8 for {', '.join(plan.layers_at('int16x8'))} cannot be "
                                   "written to a .pte: XNNPACK's quantizer has no 16-bit activations (use float)")
    quantizer = xnnpack_quantizer(plan.per_channel, float_layers=plan.layers_at(FLOAT_LAYER))
    return _lower(pt2e(module, example, samples, quantizer, calibrate=True), example)


def _dynamic(module, example, samples, plan: Plan) -> bytes:
    quantizer = xnnpack_quantizer(plan.per_channel, dynamic=True, float_layers=plan.layers_at(FLOAT_LAYER))
    return _lower(pt2e(module, example, samples, quantizer, calibrate=False), example)


#: plan class (None: float32) -> how it becomes .pte bytes, as `realize(module, example, samples, plan)`
PLANS: dict[Optional[type[Plan]], Callable[..., bytes]] = {None: _float32, Int8: _int8, Dynamic: _dynamic}


def to_pte(model: nn.Module, path: Path, plan: Optional[Plan] = None, calibration: Optional[np.ndarray] = None,
           quantization_aware: bool = False) -> Path:
    """Lower `model` to XNNPACK as `plan` says and write `path`. `quantization_aware`: `model` is a
    convert_pt2e'd QAT module, lowered as it is."""
    if plan is not None and not quantization_aware:
        FORMAT.check_plan("torch", plan)
        if type(plan) not in PLANS:
            raise StageError("export", f"precision: {plan.precision} cannot be written to a .pte")
        if plan.calibrated and (calibration is None or not len(calibration)):
            raise StageError("export", "int8 quantization needs calibration samples (data.calibration_samples)")
    samples = conversion.samples(model, calibration, False)
    what = "quantization-aware int8" if quantization_aware else ("float32" if plan is None else plan.precision)
    try:
        with conversion.eval_mode(model), conversion.quiet():
            example = conversion.example(model, samples).clone(memory_format=torch.contiguous_format)
            module = conversion.exportable(model, example)
            if quantization_aware:
                content = _lower(folded_weights(module), example)
            else:
                content = PLANS[type(plan) if plan is not None else None](module, example, samples, plan)
    except StageError:
        raise
    except Exception as exc:  # torch.export, PT2E and the lowering raise many types
        raise conversion.failure(f"ExecuTorch {what} lowering of '{type(model).__name__}' to .pte", exc) from exc
    Path(path).write_bytes(content)
    return Path(path)


def write(artifact, path: Path, calibration: Optional[np.ndarray] = None, sparse: bool = False,
          channels_last: bool = False) -> Path:
    """The torch writer of .pte files: the artifact's plan, or its QAT model as trained. `sparse` is
    refused when the recipe is validated; `channels_last` concerns the .tflite only (the .pte is NCHW)."""
    return to_pte(artifact.model, Path(path), artifact.plan, calibration,
                  quantization_aware=artifact.qat is not None)
