"""Per-layer precision in an ONNX Runtime QDQ file: the quantizer options of a plan's overrides, and
what a file's weight ops compute in (`read_layers`, for `edgekit inspect`).

A plan's `layers` (the recipe's `keep_float` / `overrides`, resolved to layer names) become
ONNX Runtime `quantize_static` options:
- a float layer: its nodes go to `nodes_to_exclude`, so no QuantizeLinear / DequantizeLinear is put
  around them and they compute in float on the float weights;
- an int16x8 layer: its nodes' activation tensors (inputs and outputs) are overridden to 16-bit in
  `TensorQuantOverrides`, and ONNX Runtime's `MixedPrecisionTensorQuantOverridesFixer` adds the
  conversions where a 16-bit tensor meets the plan's 8-bit ones (QuantizeLinear -> DequantizeLinear
  pairs of the other type), the way ORT's own mixed-precision flow does.

A node belongs to a layer when its name is inside that layer's scope (`edgekit.formats.layer_names`:
tf2onnx keeps Keras' `model/layer/Op` names, edgekit's torch writer prefixes module paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from edgekit.formats.layer_names import layer_of, layer_precision, layers_in_name
from edgekit.formats.onnx.reader import dtype_name
from edgekit.precision import FLOAT_LAYER


def layer_nodes(model, layers: Mapping[str, str]) -> dict[str, list]:
    """{precision: nodes of the main graph of `model` (an onnx.ModelProto) in a layer of `layers`
    (layer name -> precision) at that precision}; a node named inside two layers takes the first's."""
    found: dict[str, list] = {}
    for node in model.graph.node:
        named = layers_in_name(node.name)
        hit = next((layer for layer in layers if layer in named), None)
        if hit is not None:
            found.setdefault(layers[hit], []).append(node)
    return found


def quantizer_options(prepared: Path, layers: Mapping[str, str], activation_type) -> dict:
    """`nodes_to_exclude` and `extra_options` for `quantize_static` on `prepared` with activations of
    `activation_type` (a QuantType) and the per-layer `layers` (see the module docstring)."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.execution_providers.qnn.mixed_precision_overrides_utils import (
        MixedPrecisionTensorQuantOverridesFixer)
    from onnxruntime.quantization.tensor_quant_overrides import TensorQuantOverridesHelper

    if not layers:
        return {"nodes_to_exclude": [], "extra_options": {}}
    model = onnx.load(str(prepared), load_external_data=False)
    nodes = layer_nodes(model, layers)
    excluded = [n.name for n in nodes.get(FLOAT_LAYER, [])]
    wide = nodes.get("int16x8", [])
    if not wide or activation_type == QuantType.QInt16:
        return {"nodes_to_exclude": excluded, "extra_options": {}}
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    # a tensor's override holds for its producer and every consumer: the layers' inputs and inner
    # tensors, not what they hand to the next layer (the fixer converts it back to 8 bits there)
    inside = {id(n) for n in wide}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tensors = {name for n in wide for name in n.input if name and name not in constants}
    tensors |= {name for n in wide for name in n.output
                if name and consumers.get(name) and all(id(c) in inside for c in consumers[name])}
    overrides = TensorQuantOverridesHelper({name: [{"quant_type": QuantType.QInt16}] for name in sorted(tensors)})
    fixer = MixedPrecisionTensorQuantOverridesFixer.create_from_model(overrides, model, activation_type)
    fixer.apply(activation_type, default_activation_symmetric=False)
    return {"nodes_to_exclude": excluded, "extra_options": {"TensorQuantOverrides": overrides.get_dict()}}


#: weight ops: op type -> (index of the data input, index of the weight input)
_LAYER_OPS = {"Conv": (0, 1), "ConvTranspose": (0, 1), "Gemm": (0, 1), "MatMul": (0, 1),
              "QLinearConv": (0, 3), "QLinearMatMul": (0, 3), "QGemm": (0, 3),
              "MatMulInteger": (0, 1), "ConvInteger": (0, 1), "DynamicQuantizeMatMul": (0, 1)}


def _stored_dtype(model, name: str) -> str:
    elem = model.types.get(name)
    return dtype_name(elem) if elem else "float32"


def read_layers(model) -> list[dict]:
    """The precision of each weight op of the main graph of `model` (`edgekit inspect`'s view of an
    .onnx: proto, producer, constants and element types) (`layer_names.layer_precision`): its layer
    (`layer_names.layer_of` its node name), the dtype of its activations (of the tensor a
    DequantizeLinear feeding it reads, else its own) and of its stored weight (read through a
    DequantizeLinear when there is one); ops fed by DynamicQuantizeLinear are dynamic."""
    rows = []
    for node in model.proto.graph.node:
        if node.op_type not in _LAYER_OPS or max(_LAYER_OPS[node.op_type]) >= len(node.input):
            continue
        data, weight = (node.input[i] for i in _LAYER_OPS[node.op_type])
        source = model.producer.get(weight)
        dequantized = source is not None and source.op_type == "DequantizeLinear"
        stored = source.input[0] if dequantized else weight
        if stored not in model.constants:
            continue
        feeder = model.producer.get(data)
        if feeder is not None and feeder.op_type == "DynamicQuantizeLinear" or node.op_type in (
                "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"):
            activations = "dynamic"
        elif feeder is not None and feeder.op_type == "DequantizeLinear":
            activations = _stored_dtype(model, feeder.input[0])
        else:
            activations = _stored_dtype(model, data)
        weights = _stored_dtype(model, stored)
        precision = "dynamic" if activations == "dynamic" else layer_precision(activations, weights, dequantized)
        rows.append({"layer": layer_of(node.name), "op": node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}", "name": node.name, "weight": stored,
                     "activations": activations, "weights": weights, "precision": precision})
    return rows
