"""Short tensor names in a quantized .onnx, so that names do not weigh as much as the weights.

ONNX stores every tensor name in full wherever it is used, and ONNX Runtime's quantizer adds a
QuantizeLinear / DequantizeLinear pair, a scale and a zero point per tensor, all named after it
(`<name>_QuantizeLinear_Output`, `<name>_scale`, ...). With tf2onnx's names
(`sequential/mobilenetv2_1.00_96/block_13_depthwise/depthwise_weights_fused_bn_quantized`) that is a
fifth of an int8 MobileNetV2 file. `compact` renames the activations and quantization parameters
to `t<n>`; it keeps the graph's inputs and outputs, the node names (which carry the layer names that
reports and `edgekit inspect` show) and the names of the quantized weights. It also drops the
`value_info` shape annotations, which ONNX Runtime recomputes, and the per-node debugging metadata
torch.onnx writes (`pkg.torch.onnx.fx_node`, `class_hierarchy`, `namespace`, ...: some 700 bytes a
node, 40% of a small int8 Transformer).
"""

from __future__ import annotations

from pathlib import Path

#: initializers at least this many elements keep their names (the weights `edgekit inspect` lists)
NAMED_ELEMENTS = 64


def compact(path: Path) -> None:
    """Rename the tensors of the main graph of the file at `path` in place (see the module docstring).
    A model with subgraphs (If / Loop / Scan bodies may read outer names) is left as it is."""
    import math

    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return
    kept = {v.name for v in list(graph.input) + list(graph.output)}
    kept |= {t.name for t in graph.initializer if math.prod(t.dims) >= NAMED_ELEMENTS}
    kept |= {t.values.name for t in graph.sparse_initializer}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in kept:
            return name
        if name not in names:
            names[name] = f"t{len(names)}"
        return names[name]

    for node in graph.node:
        del node.metadata_props[:]
        node.input[:] = [short(n) for n in node.input]
        node.output[:] = [short(n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    del graph.value_info[:]
    onnx.save(model, str(path))
