"""int8 attention models on LiteRT: only the weight ops are int8, the attention math stays float.

Why: LiteRT runs a .tflite on CPU through its default XNNPACK delegate, which has int8 kernels for
FULLY_CONNECTED / CONV_2D / ADD / MUL ... but not for the ops of attention and LayerNorm in int8
(BATCH_MATMUL of two activations, SOFTMAX, SQUARED_DIFFERENCE, RSQRT, GELU). In a full-integer file
those ops run on LiteRT's builtin int8 kernels, and every one of them splits the XNNPACK graph, with
int8<->float conversions at each cut. Measured on LiteRT 2.3, 1 thread, batch 1, for a 68k-parameter
2-block encoder (d_model 64, 4 heads, FFN 128, 8 tokens):

| file | DELEGATE partitions | int8 / float p50 |
|---|---|---|
| torch, AI Edge Quantizer full int8 | 21 (float file: 1) | 1.55x |
| torch, only the weight ops int8 (`weight_ops_only`) | 1 | 0.64x |
| Keras, TFLiteConverter full int8 | - | 1.40x |
| Keras, all but the weight ops denylisted | - | 0.74x |

(With XNNPACK off, the full-int8 torch file takes 110 us against the float file's 74 us: the builtin
int8 kernels of those ops are slower than float too.)

Per tensor, not per channel: in a .tflite every per-channel weight carries a float32 scale and an
int64 zero point per output channel, and its int32 bias the same again, 24 bytes a channel. With the
small fan-in of an edge encoder (d_model 64: 64 weights a channel) that is 0.37 bytes per int8
weight byte. Measured on the 69.5k-parameter 2-block encoder of the coverage matrix (benchmarks/
families.py), trained on its sequences: per channel the int8 file was 0.40x (Keras) / 0.38x (torch)
the float bytes, per tensor 0.33x / 0.31x, with the same test accuracy on LiteRT (0.8075 / 0.79) and
p50 (0.65x / 0.57x float). So the weight ops of an attention model are quantized per tensor
whatever `per_channel` says (for the torch PT2E path, which sets its quantizer before conversion: a
model holding an `nn.MultiheadAttention`); `per_channel` still applies to every other model and to
the .onnx, whose zero points are one byte.

So for a model whose graph has attention (`has_attention`: a BATCH_MATMUL and a SOFTMAX), the int8
plan quantizes only the weight ops (`WEIGHT_OPS`: int8 weights and int8 activations in and out of
them) and leaves every other op float, with QUANTIZE / DEQUANTIZE around the weight ops, which
XNNPACK runs inside one partition. The weights, which are the bytes, are int8 as before. Every
other model keeps the full-integer file. The libraries' own options do it: AI Edge Quantizer's
recipe (`NO_QUANTIZE` for the other ops) and the MLIR quantizer's `denylisted_ops` (what TF's
documented selective quantization, `QuantizationDebugOptions(denylisted_ops=...)`, uses).
"""

from __future__ import annotations

from edgekit.formats.tflite import schema as tflite_schema

#: ops that carry weights: these stay int8 in an attention model
WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "EMBEDDING_LOOKUP")
#: ops that together mean "this graph has attention"
ATTENTION_OPS = ("BATCH_MATMUL", "SOFTMAX")


def op_names(content: bytes) -> set[str]:
    """The builtin op names used by the .tflite flatbuffer `content`."""
    schema, model, _ = tflite_schema.load_model(None, content)
    names = tflite_schema._enum_names(schema.BuiltinOperator)
    used = set()
    for g in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(g)
        for k in range(subgraph.OperatorsLength()):
            code = model.OperatorCodes(subgraph.Operators(k).OpcodeIndex())
            used.add(names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM"))
    return used


def has_attention(content: bytes) -> bool:
    """True when the .tflite `content` computes attention (BATCH_MATMUL and SOFTMAX)."""
    return set(ATTENTION_OPS) <= op_names(content)


def float_ops(content: bytes) -> list[str]:
    """The ops of `content` to keep float in an attention model: all but `WEIGHT_OPS`, and none
    that XNNPACK runs as well in int8 is worth a QUANTIZE / DEQUANTIZE pair around it."""
    return sorted(op_names(content) - set(WEIGHT_OPS) - {"QUANTIZE", "DEQUANTIZE", "CUSTOM"})
