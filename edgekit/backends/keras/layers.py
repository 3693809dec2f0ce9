"""Layers of the built-in zoo that tf_keras does not have, registered so HDF5 files load them.

`PositionEmbedding` is the transformer arch's learned position embedding: one trainable vector per
token position, added to the tokens. It is registered under the `edgekit` package, so a model that
holds it (the stage cache's HDF5 files included) loads wherever this backend is imported, without
a recipe's `custom_objects`.
"""

from __future__ import annotations

from edgekit.backends.keras.compat import keras


@keras.utils.register_keras_serializable(package="edgekit")
class PositionEmbedding(keras.layers.Layer):
    """`x + embedding`, with a trainable `(length, dim)` embedding for `(batch, length, dim)` inputs."""

    def __init__(self, length: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)
        self.dim = int(dim)

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding", shape=(self.length, self.dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02), trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        return inputs + self.embedding

    def get_config(self) -> dict:
        return {**super().get_config(), "length": self.length, "dim": self.dim}


__all__ = ["PositionEmbedding"]
