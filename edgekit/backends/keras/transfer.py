"""Transfer learning in Keras: a `keras.applications` base, a new head, and freeze-then-fine-tune.

`build` makes one flat Functional model: the application is built on the model's own input tensor
(`include_top=False, weights=None`), so its layers sit directly in the teacher's graph (TF-MOT
pruning and QAT cannot wrap a model nested in a model). Pretrained weights come only from a local
file, `teacher.build.weights`: an HDF5 of the base as `keras.applications` saves it (the "no top"
ImageNet file), loaded with `load_weights` as keras.applications loads it (layer by layer, in
order) — never downloaded.

The head's layers are named `head_*` (pool, dense, dropout) plus the output layer (`logits` or
`output`); every other layer is the base. `fit(..., freeze)` trains a copy with:

- `freeze="base"`: every base layer `trainable = False`. A frozen BatchNormalization runs in
  inference mode in Keras 2, so the base's statistics stay those of the pretrained weights (as the
  Keras transfer-learning guide does). Only the head learns.
- `freeze="norm"`: the fine-tuning pass. Everything trains except BatchNormalization, which stays
  frozen in inference mode (as the guide's `base_model(x, training=False)` keeps it).

The returned model is trainable again throughout, so later stages (prune, QAT, distill) fine-tune
all of it as they would any teacher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgekit.errors import InputError
from edgekit.zoo import Head
from edgekit.backends.keras import train
from edgekit.backends.keras.compat import keras

L = keras.layers
HEAD_PREFIX = "head_"
OUTPUT_NAMES = ("logits", "output")


def _mobilenet_v2(inputs, width):
    return keras.applications.MobileNetV2(input_tensor=inputs, include_top=False, weights=None, alpha=width)


def _resnet50(inputs, width):
    return keras.applications.ResNet50(input_tensor=inputs, include_top=False, weights=None)


def _efficientnet_b0(inputs, width):
    return keras.applications.EfficientNetB0(input_tensor=inputs, include_top=False, weights=None)


# arch -> the application's base on an input tensor (the width applies where edgekit.zoo.BASES says)
APPLICATIONS = {"mobilenet_v2": _mobilenet_v2, "resnet50": _resnet50, "efficientnet_b0": _efficientnet_b0}


def load_base_weights(base, weights: Path, arch: str, width: float) -> None:
    """Load the pretrained base from `weights` (layer by layer, as keras.applications does); InputError when it does not fit."""
    try:
        base.load_weights(str(weights))
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(
            f"teacher.build.weights: '{weights}' does not hold the weights of a {arch} base of width {width:g}: "
            f"{str(exc).strip()[:300]}. Give the 'no top' HDF5 file that keras.applications saves for "
            f"include_top=False at this width (alpha), e.g. base.save_weights('{arch}_no_top.h5').") from None


def head(x, config: Head, outputs: int, task: str):
    """Global average pool, `dense` ReLU layers, dropout, then the output layer."""
    x = L.GlobalAveragePooling2D(name=f"{HEAD_PREFIX}pool")(x)
    for i, units in enumerate(config.dense):
        x = L.Dense(units, activation="relu", name=f"{HEAD_PREFIX}dense{i + 1}")(x)
    if config.dropout > 0:
        x = L.Dropout(config.dropout, name=f"{HEAD_PREFIX}dropout")(x)
    return L.Dense(outputs, name=OUTPUT_NAMES[0] if task == "classification" else OUTPUT_NAMES[1])(x)


def builder(arch: str):
    """The zoo builder of a base arch: `(inputs, width, outputs, task, head=None, weights=None)`."""

    def build(inputs, width, outputs, task, head_config: Optional[Head] = None, weights: Optional[Path] = None):
        base = APPLICATIONS[arch](inputs, width)
        if weights is not None:
            load_base_weights(base, Path(weights), arch, width)
        return head(base.output, head_config or Head(), outputs, task)

    build.__doc__ = f"{arch}: the keras.applications base (include_top=False) and a new head."
    return build


BUILDERS = {arch: builder(arch) for arch in APPLICATIONS}


def is_head(layer) -> bool:
    return layer.name.startswith(HEAD_PREFIX) or layer.name in OUTPUT_NAMES


def base_layers(model) -> list:
    """The layers of the base: every layer but the input and the head."""
    return [layer for layer in model.layers if not is_head(layer) and not isinstance(layer, keras.layers.InputLayer)]


def _freeze(model, freeze: str) -> None:
    for layer in base_layers(model):
        layer.trainable = freeze != "base" and not isinstance(layer, L.BatchNormalization)


@train.on_device
def fit(model, dataset, epochs, batch_size, learning_rate, seed, progress=None, description="train", freeze="base"):
    """Train a copy of `model` with the base frozen (`base`) or only its BatchNorm frozen (`norm`),
    under the current compute (`train.training_copy`); the copy returned is float32."""
    trained = train.training_copy(model)
    _freeze(trained, freeze)
    train.compile_and_fit(trained, dataset, epochs, batch_size, learning_rate, seed, progress, description)
    for layer in trained.layers:
        layer.trainable = True
    return train.float_copy(trained)
