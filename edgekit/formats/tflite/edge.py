"""AI Edge Quantizer on a float .tflite: the recipes of the plans the TFLite converter cannot write.

AI Edge Quantizer (the quantizer LiteRT-Torch uses for its own recipes) quantizes a float .tflite
op by op, as a recipe says: per op type and per op *scope*, the names of the op's output tensors
joined by `;`, with a trailing `;`. edgekit uses it, for both frameworks, where a file needs more
than one precision or one the TFLite converter has no per-layer control of:
- `int16x8`: 16-bit activations and 8-bit weights on every op (LiteRT's 16x8 kernels);
- any plan with per-layer overrides (`Plan.layers`: the recipe's `keep_float` and `overrides`),
  and torch int8 files with float32 or uint8 inputs and outputs.

The recipe (`recipe`) starts from the plan's precision on every supported op, then gives each op
of an overridden layer its layer's precision, addressed by its exact scope. An op belongs to a
layer when one of its tensors (outputs, or the weight and bias it reads) is named inside that
layer (`edgekit.formats.layer_names`); so the layer's whole computation moves, not only its weight
op. The file's inputs and outputs keep the plan's `io` type whatever their neighbours' precision.

Ranges are the plain min/max over every calibration sample (the quantizer's default moving average
of per-sample extremes, factor 0.95, clips the activations of a batch-1 model badly), or, when the
plan's `calibration` says so, a percentile or entropy threshold (`edgekit.formats.tflite.ranges`).
The quantizer also writes every plan whose calibration is not min/max: the TFLite converter and
PT2E have no such setting.
"""

from __future__ import annotations

import re
from typing import Iterator

import numpy as np

from edgekit.formats.layer_names import layers_in_name
from edgekit.formats.tflite import schema as tflite_schema
from edgekit.precision import FLOAT_LAYER, MINMAX, Int16x8, Plan

#: activation bits of a precision AI Edge Quantizer realizes (float layers get NO_QUANTIZE)
ACTIVATION_BITS = {"int8": 8, Int16x8.name: 16}


def by_edge_quantizer(plan: Plan | None) -> bool:
    """True when AI Edge Quantizer writes the file of `plan` (see the module docstring)."""
    return plan is not None and plan.calibrated and not plan.quantization_aware and (
        isinstance(plan, Int16x8) or plan.mixed or plan.calibration != MINMAX)


def ops_with_scopes(content: bytes) -> Iterator[tuple[str, str, list[str]]]:
    """(op name, scope as AI Edge Quantizer computes it, the names of the tensors the op writes and
    of the constants it reads) for each op of the main subgraph of the .tflite `content`. The
    activations it reads are left out: they are named after the layer that wrote them."""
    schema, model, buf = tflite_schema.load_model(None, content)
    names = tflite_schema._enum_names(schema.BuiltinOperator)
    subgraph = model.Subgraphs(0)

    def tensor_names(ids, constants_only: bool = False) -> list[str]:
        tensors = [subgraph.Tensors(int(i)) for i in ids if i >= 0]
        if constants_only:
            tensors = [t for t in tensors if tflite_schema._buffer_bytes(model, buf, t) is not None]
        return [t.Name().decode(errors="replace") for t in tensors]

    for k in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        outputs = tensor_names(op.OutputsAsNumpy()) if op.OutputsLength() else []
        inputs = tensor_names(op.InputsAsNumpy()) if op.InputsLength() else []
        constants = tensor_names(op.InputsAsNumpy(), constants_only=True) if op.InputsLength() else []
        scope_names = [n for n in outputs if n] or [n for n in inputs if n]
        scope = ";".join(scope_names) + (";" if scope_names else "")
        yield names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"), scope, outputs + constants


def layer_ops(content: bytes, layers: dict[str, str]) -> list[tuple[str, str, str]]:
    """(op name, scope, precision) for every op of `content` that belongs to a layer of `layers`
    (layer name -> "int16x8" | "float"); an op named inside two such layers takes the first's."""
    found = []
    for op, scope, tensors in ops_with_scopes(content):
        named = set().union(*(layers_in_name(t) for t in tensors)) if tensors else set()
        hit = next((layer for layer in layers if layer in named), None)
        if hit is not None:
            found.append((op, scope, layers[hit]))
    return found


def recipe(plan: Plan, float_tflite: bytes):
    """AI Edge Quantizer recipe manager for the float .tflite `float_tflite` (see the module docstring)."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    from edgekit.formats.tflite import attention, torch_recurrent

    ops = qtyping.TFLOperationName
    no_quantize = algorithm_manager.AlgorithmName.NO_QUANTIZE
    tensorwise = qtyping.QuantGranularity.TENSORWISE
    granularity = qtyping.QuantGranularity.CHANNELWISE if plan.per_channel else tensorwise
    bits = ACTIVATION_BITS[plan.name]
    manager = recipe_manager.RecipeManager()
    manager.add_static_config(".*", ops.ALL_SUPPORTED, activation_num_bits=bits, weight_num_bits=8,
                              weight_granularity=granularity)
    if plan.per_channel:  # the unrolled LSTM / GRU layers' FULLY_CONNECTED ops: per tensor (torch_recurrent)
        manager.add_static_config(torch_recurrent.SCOPE, ops.FULLY_CONNECTED, activation_num_bits=bits,
                                  weight_num_bits=8, weight_granularity=tensorwise)
    if attention.has_attention(float_tflite):
        manager.add_static_config(".*", ops.FULLY_CONNECTED, activation_num_bits=bits, weight_num_bits=8,
                                  weight_granularity=tensorwise)
        for name in attention.float_ops(float_tflite):
            if name in ops.__members__:
                manager.add_quantization_config(".*", ops[name], algorithm_key=no_quantize)
    for op, scope, precision in layer_ops(float_tflite, dict(plan.layers)):
        if op not in ops.__members__:
            continue
        where = f"^{re.escape(scope)}$"
        if precision == FLOAT_LAYER:
            manager.add_quantization_config(where, ops[op], algorithm_key=no_quantize)
        else:
            manager.add_static_config(where, ops[op], activation_num_bits=ACTIVATION_BITS[precision],
                                      weight_num_bits=8, weight_granularity=granularity)
    if plan.io == "float32":
        for op in (ops.INPUT, ops.OUTPUT):
            manager.add_quantization_config(".*", op, algorithm_key=no_quantize)
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


def quantize(float_tflite: bytes, plan: Plan, samples: np.ndarray, batch: int = 1) -> bytes:
    """`float_tflite` quantized by AI Edge Quantizer as `plan` says (`recipe`), calibrated on
    `samples` fed `batch` at a time, its ranges chosen by the plan's `calibration`."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import calibrator, quantizer
    from ai_edge_quantizer.utils import qsv_utils

    from edgekit.formats.tflite import ranges

    manager = recipe(plan, float_tflite)
    signatures = Interpreter(model_content=float_tflite).get_signature_list()
    key = next(iter(signatures))
    name = signatures[key]["inputs"][0]
    chunks = [np.ascontiguousarray(np.resize(samples[i:i + batch], (batch,) + samples.shape[1:]), np.float32)
              for i in range(0, len(samples), batch)]  # a short last batch is filled with its own samples
    found = calibrator.Calibrator(float_tflite, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    found.calibrate({key: [{name: chunk} for chunk in chunks]}, manager)
    qsvs = found.get_model_qsvs()
    if plan.calibration != MINMAX:
        qsvs = ranges.clipped(float_tflite, chunks, qsvs, plan.calibration)
    engine = quantizer.Quantizer(bytearray(float_tflite), manager.get_quantization_recipe())
    result = engine.quantize(qsvs, enable_progress_report=False)
    return bytes(result.quantized_model)
