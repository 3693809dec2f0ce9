"""Names of the built-in architectures, shared by every framework's zoo.

`teacher.build.arch` and `distill.student.arch` name one of these; each backend implements them in
its own `zoo.py`. The width multiplier scales every layer's channels (at least 4 channels each).

The archs in `BASES` are the published ImageNet networks: a convolutional *base* (Keras
`keras.applications` with `include_top=False`, torch's torchvision layout) and a small *head*
(global average pool, optional dense layers, dropout, the output layer). They are what transfer
learning starts from: `teacher.build.weights` loads a pretrained base from a local file.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.errors import InputError

ARCHITECTURES = {
    "mobilenet_v2": "MobileNetV2 (inverted residuals, ReLU6) scaled by width (alpha), + head; ImageNet layout",
    "resnet50": "ResNet-50 (bottleneck residual blocks) + head; ImageNet layout, width 1 only",
    "efficientnet_b0": "EfficientNet-B0 (MBConv, squeeze-excitation, swish) + head; ImageNet layout, width 1 only",
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


@dataclass(frozen=True)
class Base:
    """What a pretrained-base arch needs: `min_side` pixels of height and width (the applications'
    minimum), and whether the width multiplier applies (`scalable`; else only width 1)."""

    min_side: int = 32
    scalable: bool = False


BASES: dict[str, Base] = {
    "mobilenet_v2": Base(scalable=True),
    "resnet50": Base(),
    "efficientnet_b0": Base(),
}
PRETRAINED_CHANNELS = 3  # ImageNet bases take RGB images: the first conv's weights have 3 input channels


@dataclass(frozen=True)
class Head:
    """The layers a base arch ends in: global average pool, `dense` hidden layers (ReLU), dropout
    of rate `dropout`, then the output layer (one unit per class, or per regression value)."""

    dropout: float = 0.2
    dense: tuple[int, ...] = ()


def check_base_input(arch: str, input_shape: tuple[int, ...], pretrained: bool, where: str) -> None:
    """Raise InputError when samples of `input_shape` (channels-last) cannot go through the base of
    `arch`: not an image, smaller than the base's minimum, or (with pretrained weights) not RGB."""
    base = BASES.get(arch)
    if base is None:
        return
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape[:2]) < base.min_side:
        raise InputError(
            f"{where}: {arch} needs images of at least {base.min_side}x{base.min_side} pixels "
            f"(height, width, channels), but the samples have shape {list(shape)}. Use larger images "
            "(data.image_size for an image folder), or a zoo arch made for small inputs (e.g. mobilenet_v1).")
    if pretrained and shape[2] != PRETRAINED_CHANNELS:
        raise InputError(
            f"{where}: pretrained {arch} weights take RGB images ({PRETRAINED_CHANNELS} channels), but the "
            f"samples have {shape[2]}. Convert the images to RGB, or drop teacher.build.weights to train "
            "from scratch.")
