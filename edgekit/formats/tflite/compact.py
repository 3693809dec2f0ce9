"""Short tensor names in an int8 .tflite, so that names do not weigh as much as the weights.

A .tflite stores a name for every tensor. The converters name activations after the graph they were
traced from: LiteRT-Torch writes the module path of every op
(`edgekit.backends.torch.zoo.ZooNet/torch.nn.modules.rnn.GRU_rnn;...`, often several joined by `;`),
TFLiteConverter the TF op names. The runtime never reads them. In an int8 file, whose weights are a
quarter of the float ones, they weigh: 52 kB of a 190 kB int8 torch GRU (16 steps unrolled), 28 kB of
a 146 kB int8 torch Transformer encoder.

`compact` renames the other tensors to `t<n>`. It keeps the names of the subgraphs' inputs and
outputs (which the signatures and `get_input_details` show) and of the stored tensors of at least
`NAMED_ELEMENTS` elements (the weights `edgekit inspect` lists by name). Nothing else changes: the
file is read and re-written with the flatc-generated object API of the schema that ships in
ai-edge-litert, the way TensorFlow's own `lite/tools/flatbuffer_utils.write_model` does. Buffers
stored after the flatbuffer and addressed by offset (AI Edge Quantizer writes a file's float weights
that way) are moved inside it, as the object API writes no data beyond the flatbuffer; a file that
would then pass flatbuffers' 2 GB limit is left as it is. Its ONNX twin is `edgekit.formats.onnx.compact`.
"""

from __future__ import annotations

import math
from pathlib import Path

#: stored tensors of at least this many elements keep their names (the weights `edgekit inspect` lists)
NAMED_ELEMENTS = 64
_IDENTIFIER = b"TFL3"
_FLATBUFFER_LIMIT = (1 << 31) - (1 << 20)


def _stored_elements(model, tensor) -> int:
    buffer = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
    if buffer is None or buffer.data is None or len(buffer.data) == 0:
        return 0
    return math.prod(int(d) for d in (tensor.shape if tensor.shape is not None else []))


def compact(path: Path) -> None:
    """Rename the tensors of every subgraph of the .tflite at `path` in place (module docstring)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    import numpy as np

    data = Path(path).read_bytes()
    if len(data) > _FLATBUFFER_LIMIT:
        return
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    for buffer in model.buffers or []:
        if buffer.offset and buffer.offset > 1:  # 0 and 1 mean "no data"
            buffer.data = np.frombuffer(data[buffer.offset:buffer.offset + buffer.size], np.uint8)
            buffer.offset = buffer.size = 0
    renamed = 0
    for subgraph in model.subgraphs or []:
        kept = {int(i) for i in (subgraph.inputs if subgraph.inputs is not None else [])}
        kept |= {int(i) for i in (subgraph.outputs if subgraph.outputs is not None else [])}
        for index, tensor in enumerate(subgraph.tensors or []):
            if index in kept or _stored_elements(model, tensor) >= NAMED_ELEMENTS:
                continue
            tensor.name = f"t{renamed}".encode()
            renamed += 1
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    Path(path).write_bytes(bytes(builder.Output()))
