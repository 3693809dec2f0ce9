"""PyTorch -> .tflite with LiteRT-Torch, quantized as the artifact's precision plan says.

The conversion of each precision plan is `edgekit.formats.tflite.plans.TORCH`, built on the
primitives of `Conversion` here (convert, PT2E, AI Edge Quantizer). Quantization-aware models (a
convert_pt2e'd module, passed with the PT2EQuantizer it was trained with, `artifact.qat.quantizer`)
are converted with that quantizer and no further calibration; LiteRT-Torch gives them int8 inputs
and outputs only (the refusals declared in `edgekit.formats.tflite`).

`calibration` holds channels-last (NHWC) float samples; the first one is the example input that
fixes the .tflite's shapes. LiteRT-Torch cannot lower a dynamic batch through a flatten/view, so the
.tflite has a fixed batch (1, or the batch a torch.export teacher was specialised to), and LiteRT
cannot resize it (the RESHAPE targets are constants): runtimes feed it one sample at a time.
`channels_last=True` wraps the model in `litert_torch.to_channel_last_io` so the .tflite takes NHWC
images (the transpose is folded into the graph); it applies to 4-D image inputs only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.backends.torch import conversion
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.conversion import batches as _batches
from edgekit.backends.torch.train import set_mode, static_batch
from edgekit.errors import StageError
from edgekit.formats.tflite import FORMAT, torch_recurrent
from edgekit.formats.tflite.plans import TORCH
from edgekit.precision import Plan
from edgekit.quiet import debugging

CALIBRATION_BATCH = 32  # samples per PT2E calibration call when the batch dimension can be dynamic


def _litert_torch():
    if not debugging():
        os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    with conversion.quiet():
        import litert_torch
    return litert_torch


def _calibration_graph(model: nn.Module, example, batch: int):
    """The exported graph PT2E observes and the batch to feed it: a dynamic batch when torch.export
    allows one (calibrating 32 samples a call is several times faster than one at a time), else
    the example's fixed batch. LiteRT-Torch re-exports the converted module with the example's shape.
    LSTM / GRU layers are decomposed into linears first, so PT2E quantizes their weights
    (`edgekit.formats.tflite.torch_recurrent`)."""
    if static_batch(model) is None:
        pair = torch.cat([example, example])
        dims = {0: torch.export.Dim("batch", min=1, max=1 << 16)}
        for shapes in (({0: dims[0]},), ((dims,),)):  # forward(x) | forward(*args) (channels-last wrapper)
            try:
                exported = torch.export.export(model, (pair,), dynamic_shapes=shapes)
            except Exception:
                continue
            return torch_recurrent.decompose(exported), CALIBRATION_BATCH
    return torch_recurrent.decompose(torch.export.export(model, (example,))), batch


def _pt2e(model: nn.Module, example, samples: np.ndarray, quantizer, calibrate: bool, batch: int):
    """PT2E post-training quantization with `quantizer`: the convert_pt2e'd module."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibrate:  # no activation observers (dynamic): one pass sets the weight observers
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
    return converted


class Conversion:
    """One model on its way to .tflite: the module to convert (channels-last wrapped when asked), its
    example input, the calibration samples and the batch the file will have."""

    def __init__(self, model: nn.Module, samples: np.ndarray, channels_last: bool):
        self.litert_torch = _litert_torch()
        self.model = model
        self.samples = samples
        self.batch = static_batch(model) or 1
        self.example = conversion.example(model, samples)
        wrap = channels_last and samples.ndim == 4
        traced = self.example.permute(0, 3, 1, 2).contiguous() if wrap else self.example  # traced in NCHW
        self.module = conversion.exportable(model, traced)
        if wrap:
            self.module = self.litert_torch.to_channel_last_io(self.module, args=[0])
            self.module.training = False  # in eval mode already; .eval() would recurse into exported graphs

    def has_attention_module(self) -> bool:
        """True when the model holds an `nn.MultiheadAttention` (nn.TransformerEncoder's attention)."""
        return any(isinstance(m, nn.MultiheadAttention) for m in self.model.modules())

    def convert(self, module=None, quant_config=None) -> bytes:
        module = self.module if module is None else module
        return bytes(self.litert_torch.convert(module, (self.example,), quant_config=quant_config).model_content())

    def with_quantizer(self, module, quantizer) -> bytes:
        from litert_torch.quantize.quant_config import QuantConfig

        return self.convert(module, QuantConfig(pt2e_quantizer=quantizer))

    def pt2e(self, quantizer, calibrate: bool) -> bytes:
        """PT2E post-training quantization with `quantizer`, observing every calibration sample
        when `calibrate` (static activation ranges), then conversion with that quantizer."""
        converted = _pt2e(self.module, self.example, self.samples, quantizer, calibrate, self.batch)
        return self.with_quantizer(converted, quantizer)

    def edge_quantize(self, plan) -> bytes:
        """The float .tflite, quantized by AI Edge Quantizer as `plan` says (`edge.quantize`)."""
        from edgekit.formats.tflite import edge

        return edge.quantize(self.convert(), plan, self.samples, self.batch)


def _check_plan(model: nn.Module, plan: Optional[Plan], quantizer) -> None:
    if plan is None:
        return
    if plan.quantization_aware and quantizer is None:
        raise StageError("export", f"quantize.method: qat, but '{type(model).__name__}' comes with no trained "
                                   "quantizer; post-training quantization would not be what the recipe asked for")
    FORMAT.check_plan("torch", plan)
    if type(plan) not in TORCH:
        raise StageError("export", f"precision: {plan.precision} cannot be written to a torch .tflite")


def _tflite_bytes(model: nn.Module, plan: Optional[Plan], samples: np.ndarray, channels_last: bool, quantizer) -> bytes:
    c = Conversion(model, samples, channels_last)
    if quantizer is not None:  # quantization-aware: the trained quantization, no calibration
        return c.with_quantizer(c.module, quantizer)
    return TORCH[type(plan) if plan is not None else None](c, plan)


def to_tflite(model: nn.Module, path: Path, plan: Optional[Plan] = None, calibration: Optional[np.ndarray] = None,
              channels_last: bool = False, quantizer=None) -> Path:
    """Convert `model` with LiteRT-Torch, quantized as `plan` says, and write `path`. A
    quantization-aware model comes with the PT2E `quantizer` it was trained with."""
    _check_plan(model, plan, quantizer)
    needs_samples = plan is not None and plan.calibrated and quantizer is None
    if needs_samples and (calibration is None or not len(calibration)):
        raise StageError("export", "int8 quantization needs calibration samples (data.calibration_samples)")
    samples = conversion.samples(model, calibration, channels_last)
    what = "float32" if plan is None else plan.precision
    if quantizer is not None:
        what = "quantization-aware int8"
    try:
        with conversion.eval_mode(model), conversion.quiet():
            content = _tflite_bytes(model, plan, samples, channels_last, quantizer)
    except StageError:
        raise
    except Exception as exc:  # torch.export, PT2E, the MLIR lowering and the quantizer raise many types
        raise conversion.failure(f"LiteRT-Torch {what} conversion of '{type(model).__name__}' to .tflite", exc) from exc
    Path(path).write_bytes(content)
    return Path(path)


def write(artifact, path: Path, calibration: Optional[np.ndarray] = None, sparse: bool = False,
          channels_last: bool = False) -> Path:
    """The torch writer of .tflite files: the trained quantizer of a quantization-aware artifact is
    `artifact.qat.quantizer`. `sparse` is refused for torch when the recipe is validated."""
    quantizer = artifact.qat.quantizer if artifact.qat is not None else None
    return to_tflite(artifact.model, Path(path), artifact.plan, calibration, channels_last=channels_last,
                     quantizer=quantizer)
