"""Keras recurrent models (LSTM, GRU, SimpleRNN, Bidirectional) -> .tflite: a fixed batch of 1.

Why: `TFLiteConverter.from_keras_model` traces the model with a dynamic batch, and a Keras RNN layer
then builds a TensorList whose element shape depends on that batch; the converter refuses it
("'tf.TensorListReserve' op requires element_shape to be static"). TensorFlow's documented way
(https://www.tensorflow.org/lite/models/convert/rnn) is to convert a concrete function whose input
has a static batch: `tf.function(input_signature=[TensorSpec([1, steps, features])])` and
`TFLiteConverter.from_concrete_functions([fn], model)`. The converter then fuses a Keras `LSTM` into
one UNIDIRECTIONAL_SEQUENCE_LSTM op (float, dynamic, float16 and full-integer int8 with int8
weights all work).

Dynamic range: TF 2.21's MLIR dynamic-range quantizer (the default) leaves the fused LSTM's weights
float32, so the "dynamic" file would be the float file. Its previous quantizer
(`experimental_new_dynamic_range_quantizer = False`) stores them as int8 for TFLite's hybrid LSTM
kernel; `adjust` selects it for recurrent models only. Either quantizer skips weight tensors under
1024 elements, so a very small LSTM stays float in "dynamic".

The rule is deterministic and read from the model: it takes this path when any of its layers, at
any depth, is a Keras `RNN` (the base class of LSTM, GRU and SimpleRNN; Bidirectional wraps them).
Every other model keeps `from_keras_model` with its dynamic batch, so its bytes do not change.

Recurrent layers TFLite does not fuse (`GRU`, `SimpleRNN`) convert to a WHILE loop. For full-integer
int8 the converter crashes on that loop (a segmentation fault while quantizing it, TF 2.21), so
for an int8 plan those layers are unrolled over their (static) time steps in a clone with the same
weights: plain FULLY_CONNECTED / LOGISTIC / TANH ops that quantize like any other. The steps share
their int8 weights, but each step's FULLY_CONNECTED has its own int32 bias (its input, the hidden
state, has its own scale at every step) and, per channel, its own scales and zero points for weights
and bias: for a 57k-parameter GRU (16 steps, 128 units) these were 26,000 values, 150 kB of a
300 kB int8 file against a 236 kB float one. So such a model is quantized per tensor (`adjust`),
as the torch writer does with its decomposed LSTM / GRU layers (`edgekit.formats.tflite.torch_recurrent`);
the file is still larger than 0.35x the float WHILE-loop file, which stores the weights once and
its loop body once.

A .tflite with batch 1 is run one sample at a time by `edgekit.runtimes.base.Session.predict`.
"""

from __future__ import annotations

from edgekit.backends.keras.compat import keras, tf
from edgekit.precision import Dynamic, Int8, Plan

#: the layers TFLite's converter fuses into one op (LSTM -> UNIDIRECTIONAL_SEQUENCE_LSTM); other RNN
#: layers are unrolled when the plan quantizes activations (see the module docstring)
FUSED = (keras.layers.LSTM,)


def _layers(model):
    """Every layer of `model`, nested models and wrappers included."""
    return [m for m in model.submodules if isinstance(m, keras.layers.Layer)]


def is_recurrent(model) -> bool:
    """True when `model` contains a Keras RNN layer, which needs a static batch to convert."""
    return any(isinstance(layer, keras.layers.RNN) for layer in _layers(model))


def needs_unrolling(model) -> bool:
    """True when `model` has an RNN layer TFLite does not fuse (its WHILE loop cannot be int8-quantized)."""
    return any(isinstance(layer, keras.layers.RNN) and not isinstance(layer, FUSED) for layer in _layers(model))


def _unroll(layer):
    """A clone of `layer`; an unfused RNN layer (also inside Bidirectional) with `unroll=True`."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.RNN) and not isinstance(layer, FUSED):
        config["unroll"] = True
    elif isinstance(layer, keras.layers.Bidirectional):
        inner = layer.forward_layer
        if isinstance(inner, keras.layers.RNN) and not isinstance(inner, FUSED):
            config["layer"]["config"]["unroll"] = True
            if config.get("backward_layer"):
                config["backward_layer"]["config"]["unroll"] = True
    return layer.__class__.from_config(config)


def unrolled(model):
    """`model` with its unfused RNN layers unrolled over time, same weights (same outputs)."""
    clone = keras.models.clone_model(model, clone_function=_unroll)
    clone.set_weights(model.get_weights())
    return clone


def converter(model, unroll: bool):
    """A `TFLiteConverter` for `model` traced with batch 1 (unfused RNN layers unrolled if `unroll`)."""
    if unroll and needs_unrolling(model):
        model = unrolled(model)
    specs = [tf.TensorSpec([1, *tensor.shape[1:]], tensor.dtype, name=tensor.name.split(":")[0])
             for tensor in model.inputs]

    @tf.function(input_signature=specs)
    def serving(*inputs):
        return model(list(inputs) if len(inputs) > 1 else inputs[0])

    return tf.lite.TFLiteConverter.from_concrete_functions([serving.get_concrete_function()], model)


def adjust(converter, plan: "Plan | None", model) -> None:
    """Settings recurrent models need on top of the plan's (`edgekit.formats.tflite.plans.KERAS`):
    the previous dynamic-range quantizer, which quantizes the fused LSTM's weights, and per-tensor
    scales for an int8 model whose recurrent layers are unrolled (see the module docstring)."""
    if isinstance(plan, Dynamic):
        converter.experimental_new_dynamic_range_quantizer = False
    if isinstance(plan, Int8) and not plan.quantization_aware and needs_unrolling(model):
        converter._experimental_disable_per_channel = True
