"""The built-in architectures (edgekit.zoo) as tf_keras Functional models.

They are small on purpose: classifiers for 8x8 to 96x96 images or spectrograms that fit on a
microcontroller. Strides adapt to small inputs so an 8x8 digit is not pooled away.
"""

from __future__ import annotations

from edgekit.zoo import ENCODER_BLOCKS, HEADS, channels, check_base_input, model_width
from edgekit.backends.keras import transfer
from edgekit.backends.keras.compat import keras
from edgekit.backends.keras.layers import PositionEmbedding

L = keras.layers


def _head(x, outputs: int, task: str):
    return L.Dense(outputs, name="logits" if task == "classification" else "output")(x)


def _pool_if_room(x, min_side: int = 4):
    return L.MaxPooling2D(2)(x) if min(x.shape[1], x.shape[2]) >= min_side else x


def _stride_for(x) -> int:
    return 2 if min(x.shape[1], x.shape[2]) >= 8 else 1


def _as_image(inputs):
    """Conv zoo models take (h, w, c); a (steps, features) input gets a channel axis."""
    return L.Reshape(tuple(inputs.shape[1:]) + (1,))(inputs) if len(inputs.shape) == 3 else inputs


def mlp(inputs, width, outputs, task):
    x = L.Flatten()(inputs)
    x = L.Dense(channels(128, width), activation="relu")(x)
    x = L.Dense(channels(64, width), activation="relu")(x)
    return _head(x, outputs, task)


def cnn_tiny(inputs, width, outputs, task):
    x = _as_image(inputs)
    x = L.Conv2D(channels(8, width), 3, padding="same", activation="relu")(x)
    x = _pool_if_room(x)
    x = L.Conv2D(channels(16, width), 3, padding="same", activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return _head(x, outputs, task)


def cnn_small(inputs, width, outputs, task):
    x = _as_image(inputs)
    x = L.Conv2D(channels(32, width), 3, padding="same", activation="relu")(x)
    x = L.Conv2D(channels(64, width), 3, padding="same", activation="relu")(x)
    x = _pool_if_room(x)
    x = L.Flatten()(x)
    x = L.Dense(channels(128, width), activation="relu")(x)
    return _head(x, outputs, task)


def _conv_bn(x, filters, kernel, strides=1):
    x = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x)


def _separable(x, filters, strides=1):
    x = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    return _conv_bn(x, filters, 1)


def ds_cnn(inputs, width, outputs, task):
    x = _as_image(inputs)
    x = _conv_bn(x, channels(64, width), 3, strides=_stride_for(x))
    for _ in range(4):
        x = _separable(x, channels(64, width))
    x = L.GlobalAveragePooling2D()(x)
    return _head(x, outputs, task)


def resnet8(inputs, width, outputs, task):
    x = _as_image(inputs)
    x = _conv_bn(x, channels(16, width), 3)
    for stage, base in enumerate((16, 32, 64)):
        filters = channels(base, width)
        strides = _stride_for(x) if stage > 0 else 1
        y = _conv_bn(x, filters, 3, strides)
        y = L.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = L.BatchNormalization()(y)
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = L.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
            shortcut = L.BatchNormalization()(shortcut)
        x = L.ReLU()(L.Add()([y, shortcut]))
    x = L.GlobalAveragePooling2D()(x)
    return _head(x, outputs, task)


def mobilenet_v1(inputs, width, outputs, task):
    x = _as_image(inputs)
    x = _conv_bn(x, channels(32, width), 3, strides=_stride_for(x))
    for base, downsample in ((64, False), (128, True), (128, False), (256, True), (256, False), (512, True)):
        x = _separable(x, channels(base, width), strides=_stride_for(x) if downsample else 1)
    x = L.GlobalAveragePooling2D()(x)
    return _head(x, outputs, task)


def _as_sequence(inputs):
    """Sequence zoo models take (steps, features); an (h, w, c) image is h rows of w·c features."""
    shape = tuple(inputs.shape[1:])
    if len(shape) == 2:
        return inputs
    steps, features = shape[0], 1
    for d in shape[1:]:
        features *= int(d)
    return L.Reshape((steps, features))(inputs)


def transformer(inputs, width, outputs, task):
    """A post-norm Transformer encoder (as torch's `nn.TransformerEncoderLayer`, GELU, no dropout)."""
    x = _as_sequence(inputs)
    d = model_width(width)
    x = L.Dense(d)(x)
    x = PositionEmbedding(int(x.shape[1]), d)(x)
    for _ in range(ENCODER_BLOCKS):
        attention = L.MultiHeadAttention(num_heads=HEADS, key_dim=d // HEADS)(x, x)
        x = L.LayerNormalization()(L.Add()([x, attention]))
        y = L.Dense(2 * d, activation="gelu")(x)
        y = L.Dense(d)(y)
        x = L.LayerNormalization()(L.Add()([x, y]))
    x = L.GlobalAveragePooling1D()(x)
    return _head(x, outputs, task)


def lstm(inputs, width, outputs, task):
    return _head(L.LSTM(channels(64, width))(_as_sequence(inputs)), outputs, task)


def gru(inputs, width, outputs, task):
    return _head(L.GRU(channels(64, width))(_as_sequence(inputs)), outputs, task)


BUILDERS = {
    **transfer.BUILDERS,  # mobilenet_v2, resnet50, efficientnet_b0: keras.applications bases + head
    "mlp": mlp,
    "cnn_tiny": cnn_tiny,
    "cnn_small": cnn_small,
    "ds_cnn": ds_cnn,
    "resnet8": resnet8,
    "mobilenet_v1": mobilenet_v1,
    "transformer": transformer,
    "lstm": lstm,
    "gru": gru,
}


def build(arch: str, width: float, input_shape: tuple[int, ...], outputs: int, task: str, **options):
    """A new Functional model named after its architecture. `options` (`head_config`, `weights`)
    go to the base archs of `transfer` only; validation refuses them for the others."""
    check_base_input(arch, input_shape, options.get("weights") is not None, where=f"arch {arch}")
    inputs = keras.Input(shape=input_shape, name="input")
    given = {key: value for key, value in options.items() if value is not None}
    return keras.Model(inputs, BUILDERS[arch](inputs, width, outputs, task, **given), name=f"{arch}_w{width:g}")
