"""How each precision plan becomes a .tflite, per framework: the realization tables the writers use.

`KERAS`: plan class (None: float32) -> set-up of TensorFlow's `TFLiteConverter` for it.
`TORCH`: plan class -> conversion with LiteRT-Torch, through the primitives of the torch writer's
`Conversion` (`convert`, `pt2e`, `edge_quantize`):
- int8, io int8: PT2E post-training quantization (LiteRT-Torch's PT2EQuantizer, symmetric int8
  weights, per-channel unless `per_channel: false`, activations calibrated on every calibration
  sample). LiteRT-Torch folds the edge QUANTIZE/DEQUANTIZE into the model's inputs and outputs, so
  this gives int8 inputs and outputs and has no option for anything else (litert-torch issue #670).
  nn.LSTM / nn.GRU are decomposed before PT2E so their weights are int8 too, per tensor
  (`edgekit.formats.tflite.torch_recurrent` says why).
- int8, io float32 | uint8: the float .tflite quantized with AI Edge Quantizer (the quantizer
  LiteRT-Torch uses for its own recipes; static int8, ranges the min/max over every calibration
  sample), whose recipe leaves the INPUT/OUTPUT tensors float or makes them uint8, as TF's
  converter does for Keras. In an attention model only the weight ops are int8, per tensor
  (`edgekit.formats.tflite.attention`: LiteRT's XNNPACK runs the rest faster in float, and per-channel
  parameters weigh a fifth of the int8 weights of a small encoder).
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
from edgekit.precision import Dynamic, Float16, Int8, Plan


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


KERAS: dict[Optional[type[Plan]], Callable[[Any, Optional[Plan], Optional[np.ndarray]], None]] = {
    None: _keras_float32, Int8: _keras_int8, Dynamic: _keras_dynamic, Float16: _keras_float16,
}


# ---- torch: LiteRT-Torch, PT2E and AI Edge Quantizer ------------------------------------------

def _pt2e_quantizer(per_channel: bool, dynamic: bool):
    from edgekit.formats.tflite import torch_recurrent

    return torch_recurrent.quantizer(per_channel, dynamic)


def _edge_recipe(plan: Plan, float_tflite: bytes):
    """AI Edge Quantizer recipe manager for the float .tflite `float_tflite`: static int8 everywhere
    (for an attention model on its weight ops only, `edgekit.formats.tflite.attention`), `plan.io`
    on the model's inputs/outputs."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    from edgekit.formats.tflite import attention, torch_recurrent

    ops = qtyping.TFLOperationName
    granularity = qtyping.QuantGranularity.CHANNELWISE if plan.per_channel else qtyping.QuantGranularity.TENSORWISE
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8,
                              weight_granularity=granularity)
    if plan.per_channel:  # the unrolled LSTM / GRU layers' FULLY_CONNECTED ops: per tensor (torch_recurrent)
        manager.add_static_config(torch_recurrent.SCOPE, ops.FULLY_CONNECTED, activation_num_bits=8,
                                  weight_num_bits=8, weight_granularity=qtyping.QuantGranularity.TENSORWISE)
    if attention.has_attention(float_tflite):
        manager.add_static_config(".*", ops.FULLY_CONNECTED, activation_num_bits=8, weight_num_bits=8,
                                  weight_granularity=qtyping.QuantGranularity.TENSORWISE)
        for name in attention.float_ops(float_tflite):
            if name in ops.__members__:
                manager.add_quantization_config(".*", ops[name], algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
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


def _torch_float32(c, plan: Optional[Plan]) -> bytes:
    return c.convert()


def _torch_float16(c, plan: Plan) -> bytes:
    from litert_torch.generative.quantize import quant_recipes

    return c.convert(quant_config=quant_recipes.full_fp16_recipe())


def _torch_dynamic(c, plan: Plan) -> bytes:
    return c.pt2e(_pt2e_quantizer(plan.per_channel, dynamic=True), calibrate=False)


def _torch_int8(c, plan: Plan) -> bytes:
    if plan.io == "int8":  # an nn.MultiheadAttention model: per-tensor weights (formats.tflite.attention)
        per_channel = plan.per_channel and not c.has_attention_module()
        return c.pt2e(_pt2e_quantizer(per_channel, dynamic=False), calibrate=True)
    return c.edge_quantize(lambda float_tflite: _edge_recipe(plan, float_tflite))


TORCH: dict[Optional[type[Plan]], Callable[[Any, Optional[Plan]], bytes]] = {
    None: _torch_float32, Int8: _torch_int8, Dynamic: _torch_dynamic, Float16: _torch_float16,
}
