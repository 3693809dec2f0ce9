"""How each precision plan becomes a .tflite, per framework: the realization tables the writers use.

`KERAS`: plan class (None: float32) -> set-up of TensorFlow's `TFLiteConverter` for it; int16x8,
plans with per-layer overrides and plans calibrated by percentile or entropy are converted float and
quantized by AI Edge Quantizer (`edgekit.formats.tflite.edge`, `keras_setup`), which has a recipe per
op where the converter has one setting for the whole model, and takes ranges edgekit clips.
`TORCH`: plan class -> conversion with LiteRT-Torch, through the primitives of the torch writer's
`Conversion` (`convert`, `pt2e`, `edge_quantize`):
- int8, io int8: PT2E post-training quantization (LiteRT-Torch's PT2EQuantizer, symmetric int8
  weights, per-channel unless `per_channel: false`, activations calibrated on every calibration
  sample). LiteRT-Torch folds the edge QUANTIZE/DEQUANTIZE into the model's inputs and outputs, so
  this gives int8 inputs and outputs and has no option for anything else (litert-torch issue #670).
  nn.LSTM / nn.GRU are decomposed before PT2E so their weights are int8 too, per tensor
  (`edgekit.formats.tflite.torch_recurrent` says why).
- int8, io float32 | uint8, int8 with per-layer overrides, and int8 calibrated by percentile or
  entropy: the float .tflite quantized with AI Edge Quantizer (`edgekit.formats.tflite.edge`: static
  int8, ranges the min/max over every calibration sample or the plan's clipped ones), whose recipe leaves the INPUT/OUTPUT tensors float or makes them uint8, as
  TF's converter does for Keras. In an attention model only the weight ops are int8, per tensor
  (`edgekit.formats.tflite.attention`: LiteRT's XNNPACK runs the rest faster in float, and per-channel
  parameters weigh a fifth of the int8 weights of a small encoder).
- int16x8: AI Edge Quantizer with 16-bit activations (`edge`).
- dynamic: PT2E with `is_dynamic=True`: int8 weights, activations quantized inside the kernels at
  run time (hybrid FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D), float inputs and outputs.
- float16: LiteRT-Torch's fp16 recipe (float16 weights behind DEQUANTIZE ops, float32 compute).

A new precision adds one entry to each table (and its refusals in `edgekit.formats.tflite`).
Frameworks are imported inside the functions: the torch writer importing this module loads no
TensorFlow, and the Keras writer no torch.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from edgekit.errors import StageError
from edgekit.formats.tflite import edge
from edgekit.precision import Dynamic, Float16, Int8, Int16x8, Plan


# ---- Keras: TFLiteConverter settings ---------------------------------------------------------

def _representative(calibration: np.ndarray):
    def samples():
        for i in range(len(calibration)):
            yield [calibration[i:i + 1].astype(np.float32)]

    return samples


def _keras_float32(converter, plan: Optional[Plan], calibration: Optional[np.ndarray]) -> None:
    """No quantization: the converter's defaults."""


def _keras_dynamic(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    from edgekit.backends.keras.compat import tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _keras_float16(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    from edgekit.backends.keras.compat import tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _keras_int8(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    """Full integer, calibrated on `calibration` (a QAT model's trained ranges take precedence)."""
    from edgekit.backends.keras.compat import tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is None or not len(calibration):
        raise StageError("export", "int8 quantization needs calibration samples (data.calibration_samples)")
    io_type = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}[plan.io]
    converter.representative_dataset = _representative(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = io_type
    converter.inference_output_type = io_type
    if not plan.per_channel:
        converter._experimental_disable_per_channel = True


def _keras_by_edge_quantizer(converter, plan: Plan, calibration: Optional[np.ndarray]) -> None:
    """A float file, which AI Edge Quantizer then quantizes (`edge.by_edge_quantizer`); the Keras
    writer runs it."""
    if calibration is None or not len(calibration):
        raise StageError("export", f"{plan.precision} quantization needs calibration samples (data.calibration_samples)")


KERAS: dict[Optional[type[Plan]], Callable[[Any, Optional[Plan], Optional[np.ndarray]], None]] = {
    None: _keras_float32, Int8: _keras_int8, Int16x8: _keras_by_edge_quantizer, Dynamic: _keras_dynamic,
    Float16: _keras_float16,
}


def keras_setup(plan: Optional[Plan]):
    """The converter set-up of `plan` for a Keras model: a mixed int8 plan's file is converted
    float and quantized by AI Edge Quantizer like an int16x8 one."""
    return _keras_by_edge_quantizer if edge.by_edge_quantizer(plan) else KERAS[type(plan) if plan is not None else None]


# ---- torch: LiteRT-Torch, PT2E and AI Edge Quantizer ------------------------------------------

def _pt2e_quantizer(per_channel: bool, dynamic: bool):
    from edgekit.formats.tflite import torch_recurrent

    return torch_recurrent.quantizer(per_channel, dynamic)


def _torch_float32(c, plan: Optional[Plan]) -> bytes:
    return c.convert()


def _torch_float16(c, plan: Plan) -> bytes:
    from litert_torch.generative.quantize import quant_recipes

    return c.convert(quant_config=quant_recipes.full_fp16_recipe())


def _torch_dynamic(c, plan: Plan) -> bytes:
    return c.pt2e(_pt2e_quantizer(plan.per_channel, dynamic=True), calibrate=False)


def _torch_by_edge_quantizer(c, plan: Plan) -> bytes:
    return c.edge_quantize(plan)


def _torch_int8(c, plan: Plan) -> bytes:
    if plan.io == "int8" and not edge.by_edge_quantizer(plan):  # nn.MultiheadAttention: per-tensor weights (formats.tflite.attention)
        per_channel = plan.per_channel and not c.has_attention_module()
        return c.pt2e(_pt2e_quantizer(per_channel, dynamic=False), calibrate=True)
    return _torch_by_edge_quantizer(c, plan)


TORCH: dict[Optional[type[Plan]], Callable[[Any, Optional[Plan]], bytes]] = {
    None: _torch_float32, Int8: _torch_int8, Int16x8: _torch_by_edge_quantizer, Dynamic: _torch_dynamic,
    Float16: _torch_float16,
}
