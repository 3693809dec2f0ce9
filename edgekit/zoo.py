"""Names of the built-in architectures, shared by every framework's zoo.

`teacher.build.arch` and `distill.student.arch` name one of these; each backend implements them in
its own `zoo.py`. The width multiplier scales every layer's channels (at least 4 channels each).
"""

from __future__ import annotations

ARCHITECTURES = {
    "mlp": "two hidden dense layers (128·w, 64·w) on the flattened input",
    "cnn_tiny": "conv 8·w → pool → conv 16·w → global pool → dense",
    "cnn_small": "conv 32·w → conv 64·w → pool → dense 128·w → dense",
    "ds_cnn": "conv 64·w, then four depthwise-separable blocks (the keyword-spotting DS-CNN)",
    "resnet8": "conv 16·w and three residual stages (16·w, 32·w, 64·w), as MLPerf Tiny's ResNet-8",
    "mobilenet_v1": "MobileNet v1 with depthwise-separable blocks, scaled by width (alpha)",
    "transformer": "rows as tokens → dense 64·w → learned positions → 2 encoder blocks (4-head attention, "
                   "LayerNorm, GELU feed-forward 128·w) → mean over tokens → dense",
    "lstm": "rows as time steps → LSTM 64·w (last step) → dense",
    "gru": "rows as time steps → GRU 64·w (last step) → dense",
}

LAYER_KINDS: dict[str, dict[str, str]] = {
    "attention": {"keras": "MultiHeadAttention", "torch": "MultiheadAttention"},
    "lstm": {"keras": "LSTM", "torch": "LSTM"},
    "gru": {"keras": "GRU", "torch": "GRU"},
}
"""Kinds of layer that some stage refuses (a stage's `layer_refusals`): kind -> the layer's class
name in each framework. Validation names the class; a backend finds its layers by these names."""

ARCH_LAYERS: dict[str, tuple[str, ...]] = {"transformer": ("attention",), "lstm": ("lstm",), "gru": ("gru",)}
"""The LAYER_KINDS each built-in architecture holds, so a recipe that builds one is checked at once."""


def kind_of(framework: str, class_name: str) -> str | None:
    """The LAYER_KINDS kind of a `framework` layer class named `class_name`, or None."""
    return next((kind for kind, names in LAYER_KINDS.items() if names.get(framework) == class_name), None)


HEADS = 4
"""Attention heads of the transformer arch; its model width is a multiple of this."""
ENCODER_BLOCKS = 2


def model_width(width: float) -> int:
    """The transformer's token width at multiplier `width`: 64·w rounded to a multiple of HEADS."""
    return HEADS * max(1, int(round(64 * width / HEADS)))


def channels(base: int, width: float) -> int:
    """Channels of a layer at width multiplier `width`: rounded, never fewer than 4."""
    return max(4, int(round(base * width)))
