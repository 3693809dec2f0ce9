"""Keras models with custom layers, for the custom_objects tests (tests/keras, tests/e2e).

`write_models(folder)` writes two layer modules and the models that use them, saved by a separate
Python process: a class registered by importing its module in this process would make "the class is
unknown" impossible to test here.
- `attn_layers_<tag>.py`: a self-attention `Layer` with `get_config`, registered with
  `tf_keras.utils.register_keras_serializable`; `attention.keras` and `attention.h5` use it.
- `plain_layers_<tag>.py`: an unregistered `Scale` layer and `OBJECTS = {"Scale": Scale}`;
  `scale.keras` uses it.
`outputs.npz` holds each model's outputs on `inputs` (8x8x1 samples) as saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ATTENTION = '''
import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="{module}")
class SelfAttention(keras.layers.Layer):
    """Single-head self-attention over the rows of an image."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.query = self.add_weight(name="query", shape=(width, self.units))
        self.key = self.add_weight(name="key", shape=(width, self.units))
        self.value = self.add_weight(name="value", shape=(width, self.units))

    def call(self, x):
        q, k, v = tf.matmul(x, self.query), tf.matmul(x, self.key), tf.matmul(x, self.value)
        weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / self.units ** 0.5)
        return tf.matmul(weights, v)

    def get_config(self):
        return {{**super().get_config(), "units": self.units}}
'''

PLAIN = '''
import tf_keras as keras


class Scale(keras.layers.Layer):
    """Multiplies by a learned per-feature factor (not registered: only a dict makes it known)."""

    def build(self, input_shape):
        self.factor = self.add_weight(name="factor", shape=(int(input_shape[-1]),), initializer="ones")

    def call(self, x):
        return x * self.factor


OBJECTS = {"Scale": Scale}
'''

BUILD = '''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.path.insert(0, os.getcwd())
import numpy as np
import tf_keras as keras
import {attention}, {plain}

keras.utils.set_random_seed(0)
inputs = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
x = keras.Input((8, 8, 1))
h = keras.layers.Reshape((8, 8))(x)
h = {attention}.SelfAttention(8)(h)
attention = keras.Model(x, keras.layers.Dense({classes})(keras.layers.Flatten()(h)), name="attention")
x = keras.Input((8, 8, 1))
h = {plain}.Scale()(keras.layers.Flatten()(x))
scale = keras.Model(x, keras.layers.Dense({classes})(keras.layers.Dense(16, activation="relu")(h)), name="scale")
if {train}:
    data = np.load("data.npz")
    for model in (attention, scale):
        model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(data["x_train"], data["y_train"], epochs={train}, batch_size=32, verbose=0)
attention.save("attention.keras")
attention.save("attention.h5")
scale.save("scale.keras")
np.savez("outputs.npz", inputs=inputs, attention=attention.predict(inputs, verbose=0),
         scale=scale.predict(inputs, verbose=0))
'''


def write_models(folder: Path, tag: str, classes: int = 3, train_epochs: int = 0) -> tuple[str, str]:
    """Write the modules and models into `folder`; returns the two module names. With
    `train_epochs`, both models are first trained on `folder/data.npz` (x_train, y_train)."""
    attention, plain = f"attn_layers_{tag}", f"plain_layers_{tag}"
    (folder / f"{attention}.py").write_text(ATTENTION.format(module=attention))
    (folder / f"{plain}.py").write_text(PLAIN)
    script = BUILD.format(attention=attention, plain=plain, classes=classes, train=train_epochs)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return attention, plain
