"""Which layer of the source model a tensor or node of a shipped file belongs to, read from its name.

Converters keep the source layer in the names they write, in two conventions:
- Keras (TFLite converter, tf2onnx): TensorFlow scopes, `model/block1_conv/Conv2D`; fused ops join
  several with `;` (`model/block1_conv/Relu;model/block1_conv/Conv2D`). The layer is the segment
  before the op's own name; a nested model adds its name as a segment
  (`sequential/mobilenetv2_1.00_96/block_1_expand/Conv2D`).
- torch: LiteRT-Torch writes the module chain as `<class>_<attribute>` segments
  (`__main__.Net/torch.nn.modules.container.Sequential_features/torch.nn.modules.conv.Conv2d_0`,
  behind `ChannelLastIOWrapper/__main__.Net_wrapped` for channels-last files), and edgekit's torch
  .onnx writer prefixes every node with its module path (`features.0/node_conv2d`).

`layers_in_name` gives every layer name a tensor name may refer to (used to select the ops of the
layers a recipe's `keep_float` / `overrides` name, and by the tests); `layer_of` the one to show.
Both work on the file alone, so `edgekit inspect` attributes ops to layers without the model.
"""

from __future__ import annotations

import re

#: TensorFlow op scopes that tf2onnx and ORT's fusions append below a layer's own scope
_TF_OP_SCOPES = {"MatMul", "BiasAdd", "Conv2D", "Tensordot", "einsum", "Einsum", "depthwise", "BatchMatMulV2",
                 "MatMulAddFusion", "Relu", "Relu6", "Reshape"}
_CHAIN_SEGMENT = re.compile(r"^(?:[A-Za-z_][\w]*\.)+(?P<cls>[A-Za-z_]\w*?)(?:_(?P<attr>\w+))?$")
_CHANNELS_LAST_WRAPPER = "ChannelLastIOWrapper"


def _module_path(part: str) -> list[str] | None:
    """The module path of a LiteRT-Torch chain (`a/b_features/c_0` -> ["features", "features.0"]),
    every prefix of it, or None when `part` is not such a chain."""
    segments = part.split("/")
    if len(segments) < 2 or not all(_CHAIN_SEGMENT.match(s) for s in segments):
        return None
    first = _CHAIN_SEGMENT.match(segments[0])
    skip = 2 if first and first.group("cls") == _CHANNELS_LAST_WRAPPER else 1
    attrs = [_CHAIN_SEGMENT.match(s).group("attr") for s in segments[skip:]]
    if not attrs or any(a is None for a in attrs):
        return None
    return [".".join(attrs[:i]) for i in range(1, len(attrs) + 1)]


def _scopes(part: str) -> list[str]:
    """The enclosing scopes of one name, innermost last: the segments before the op's own name,
    without the TensorFlow op scopes tf2onnx and fusions add."""
    segments = [s for s in part.split("/") if s]
    while len(segments) > 1 and segments[-2] in _TF_OP_SCOPES:
        segments.pop(-2)
    return segments[:-1]


def layers_in_name(name: str) -> set[str]:
    """Every layer name that the tensor or node name `name` may refer to (see the module docstring)."""
    found: set[str] = set()
    for part in name.split(";"):
        part = part.strip()
        if not part:
            continue
        path = _module_path(part)
        if path:
            found.update(path)
        found.update(_scopes(part))
    return found


def layer_of(name: str) -> str | None:
    """The layer to show for `name`: of its last `;`-part that has one, the module path of a
    LiteRT-Torch chain, else the innermost scope; None for a name without a scope (e.g. `t12`)."""
    for part in reversed([p.strip() for p in name.split(";")]):
        path = _module_path(part) if part else None
        if path:
            return path[-1]
        scopes = _scopes(part) if part else []
        if scopes:
            return scopes[-1]
    return None


#: integer activation types -> the precision a weight op computes in with int8 weights
_INTEGER_ACTIVATIONS = {"int8": "int8", "uint8": "int8", "int16": "int16x8", "uint16": "int16x8"}


def layer_precision(activations: str, weights: str, weights_dequantized: bool = False) -> str:
    """The precision a weight op computes in, from the dtypes of its data input and of its stored
    weight (numpy-style names): "int8", "int16x8", "dynamic" (integer weights, float activations
    quantized inside the kernel), "float16" (float16 weights widened to float), or "float"
    (`weights_dequantized`: an integer weight behind a DEQUANTIZE / DequantizeLinear feeding a
    float op computes in float too)."""
    integer_weights = weights in ("int8", "uint8", "int4", "uint4")
    if integer_weights and activations in _INTEGER_ACTIVATIONS:
        return _INTEGER_ACTIVATIONS[activations]
    if weights == "float16":
        return "float16"
    if integer_weights and not weights_dequantized:
        return "dynamic"
    return "float"
