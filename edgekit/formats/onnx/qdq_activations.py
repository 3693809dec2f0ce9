"""Make tf2onnx's QDQ file of a full-integer .tflite one that ONNX Runtime runs as integer kernels.

edgekit's Keras QAT .onnx is tf2onnx's conversion of the QAT model's full-integer .tflite (float I/O),
which carries the trained int8 weights and ranges (`edgekit.formats.onnx.keras`). Two things in that
file kept ONNX Runtime's CPU provider from fusing its Conv / Gemm into integer kernels, so they ran in
float (quickstart's teacher after QAT: 0.078 ms against 0.022 ms for its PTQ .onnx, 1 thread):

1. tf2onnx writes the .tflite's fused activations (CONV_2D / FULLY_CONNECTED with
   `fused_activation_function` RELU, RELU6, RELU_N1_TO_1) as `DequantizeLinear -> Conv -> Relu ->
   QuantizeLinear`. ORT folds the Relu / Clip into the QuantizeLinear (`ClipQuantFusion`), which lets
   it fuse DQ -> Conv -> Q, only when the activation cuts nothing the QuantizeLinear keeps, e.g. a Relu
   before a zero point at the type's minimum (-128 for int8). TF-MOT's learned ranges rarely start at 0
   (they start at [-6, 6] and move), so its zero points are not -128. In the quantized domain such an
   activation is a clamp, exactly: quantization is monotonic and maps 0 to the zero point, so
   Q(relu(x)) == max(Q(x), zp) and Q(clip(x, a, b)) == clip(Q(x), Q(a), Q(b)). `fold_activations`
   rewrites `op -> Relu|Clip -> QuantizeLinear(s, zp)` into `op -> QuantizeLinear(s, zp) -> Clip` on
   the integers (ONNX Clip takes int8 / uint8 since opset 12, and ORT's CPU provider runs it), or drops
   the activation when the clamp would cut nothing.
2. The activations are int8. ORT's x86 CPU provider fuses DQ -> Conv -> Q into QLinearConv only for
   uint8 activations unless the session sets `session.qdqisint8allowed` (its default on ARM only).
   `activations_to_uint8` stores them as uint8 with zero point + 128: the same values, int8 weights kept.

3. On an x86 CPU without VNNI, ORT's kernels for int8 weights saturate; there the weights are stored
   as uint8 (`edgekit.formats.onnx.saturation`).

The rewrites are exact: on ORT the file gives the .tflite's outputs on LiteRT (tests/keras/test_qat_onnx_int8.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.formats.onnx.saturation import saturates, weights_to_uint8

_ACTIVATIONS = ("Relu", "Clip")


def _constant(constants: dict, name: str):
    from onnx import numpy_helper

    return numpy_helper.to_array(constants[name]) if name in constants else None


def activation_range(node, constants: dict) -> tuple[float, float] | None:
    """(low, high) that a Relu / Clip node keeps, or None when a bound is not a constant.

    `constants` maps names to TensorProtos (initializers and Constant nodes' values)."""
    if node.op_type == "Relu":
        return 0.0, float("inf")
    low, high = -float("inf"), float("inf")
    attrs = {a.name: a.f for a in node.attribute}
    if attrs:  # Clip before opset 11: bounds are attributes
        return attrs.get("min", low), attrs.get("max", high)
    for i, name in enumerate(node.input[1:3], start=1):
        if not name:
            continue
        value = _constant(constants, name)
        if value is None or value.size != 1:
            return None
        if i == 1:
            low = float(value.reshape(-1)[0])
        else:
            high = float(value.reshape(-1)[0])
    return low, high


def quantized_range(scale: float, zero_point: np.ndarray) -> tuple[float, float]:
    """The real interval a per-tensor QuantizeLinear(scale, zero point) can represent."""
    info = np.iinfo(zero_point.dtype)
    zp = int(zero_point.reshape(-1)[0])
    return scale * (info.min - zp), scale * (info.max - zp)


def ort_folds(activation: tuple[float, float], scale: float, zero_point: np.ndarray) -> bool:
    """Whether ONNX Runtime removes this activation before this QuantizeLinear (`ClipQuantFusion`:
    the interval the QuantizeLinear represents lies within the activation's, to float epsilon)."""
    low, high = quantized_range(scale, zero_point)
    eps = float(np.finfo(np.float32).eps)
    return activation[0] - low <= eps and high - activation[1] <= eps


def folded_by_ort(act, quantizers: list, constants: dict) -> bool:
    """Whether ONNX Runtime removes the Relu / Clip `act` before `quantizers` (its consumers), which
    must all be per-tensor QuantizeLinear nodes for which `ort_folds` holds."""
    bounds = activation_range(act, constants)
    if bounds is None or not quantizers:
        return False
    for q in quantizers:
        scale = _constant(constants, q.input[1]) if q.op_type == "QuantizeLinear" else None
        zero_point = _constant(constants, q.input[2]) if scale is not None and len(q.input) > 2 else None
        if zero_point is None or scale.size != 1 or not ort_folds(bounds, float(scale.reshape(-1)[0]), zero_point):
            return False
    return True


def _quantize(value: float, scale: float, zero_point: np.ndarray) -> int:
    """ONNX QuantizeLinear of one value: round half to even of value / scale in float32, plus zp, saturated."""
    info = np.iinfo(zero_point.dtype)
    if not np.isfinite(value):
        return info.min if value < 0 else info.max
    q = np.rint(np.float32(value) / np.float32(scale)) + int(zero_point.reshape(-1)[0])
    return int(np.clip(q, info.min, info.max))


def _fresh(taken: set, base: str) -> str:
    """A short tensor name not in `taken` (which it joins)."""
    name = next(f"{base}{i}" for i in range(len(taken) + 1) if f"{base}{i}" not in taken)
    taken.add(name)
    return name


def fold_activations(model) -> int:
    """Rewrite `model` (a ModelProto, in place) as the module docstring says; returns how many
    activations were moved or dropped. Needs opset 12 or later for an integer Clip."""
    from onnx import helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    constants = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            constants.update((node.output[0], a.t) for a in node.attribute if a.HasField("t"))
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    taken = {n for node in graph.node for n in list(node.input) + list(node.output) + [node.name]}
    taken |= set(constants) | {v.name for v in list(graph.input) + list(graph.output)}
    removed, after, changed = set(), {}, 0
    for act in graph.node:
        users = consumers.get(act.output[0], []) if act.op_type in _ACTIVATIONS else []
        if len(users) != 1 or users[0].op_type != "QuantizeLinear" or act.output[0] in outputs:
            continue
        q = users[0]
        scale = _constant(constants, q.input[1])
        zero_point = _constant(constants, q.input[2]) if len(q.input) > 2 and q.input[2] else None
        bounds = activation_range(act, constants)
        if (bounds is None or scale is None or scale.size != 1 or zero_point is None or zero_point.size != 1
                or zero_point.dtype not in (np.int8, np.uint8) or opset < 12):
            continue
        scale = float(scale.reshape(-1)[0])
        q.input[0] = act.input[0]
        removed.add(act.output[0])
        changed += 1
        if ort_folds(bounds, scale, zero_point):
            continue  # the clamp cuts nothing the QuantizeLinear keeps
        quantized, unclamped = q.output[0], _fresh(taken, "clamp_in")
        q.output[0] = unclamped
        info, zp = np.iinfo(zero_point.dtype), int(zero_point.reshape(-1)[0])
        names = []
        for bound, unbounded in zip(bounds, (info.min, info.max)):
            value = _quantize(bound, scale, zero_point)
            if value == unbounded:
                names.append("")  # an absent Clip bound: no constant, no parameter
            elif value == zp:
                names.append(q.input[2])  # a Relu's bound is the zero point itself
            else:
                names.append(_fresh(taken, "clamp_bound"))
                graph.initializer.append(numpy_helper.from_array(np.array(value, zero_point.dtype), names[-1]))
        while names and not names[-1]:
            names.pop()
        after[unclamped] = helper.make_node("Clip", [unclamped] + names, [quantized],
                                            name=act.name or _fresh(taken, "clamp"))
    nodes = []
    for node in graph.node:
        if not (node.output and node.output[0] in removed):
            nodes.append(node)
        nodes.extend(after[o] for o in node.output if o in after)
    del graph.node[:]
    graph.node.extend(nodes)
    return changed


# Ops that only move, select or order values, so they commute with adding 128 to every element
# (input positions that carry the activation; other inputs are shapes, indices or axes).
_SHIFTABLE = {"Reshape": (0,), "Transpose": (0,), "Flatten": (0,), "Squeeze": (0,), "Unsqueeze": (0,),
              "Identity": (0,), "MaxPool": (0,), "Slice": (0,), "Split": (0,), "Gather": (0,),
              "DepthToSpace": (0,), "SpaceToDepth": (0,), "Clip": (0,), "Concat": None}


def _int8_activations(model, constants: dict) -> set | None:
    """The int8 activation tensors (QuantizeLinear outputs and what `_SHIFTABLE` ops make of them),
    or None when one reaches something other than a DequantizeLinear or a `_SHIFTABLE` op."""
    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    found, todo = set(), []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in constants:
            zero_point = _constant(constants, node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if zero_point is not None and zero_point.dtype == np.int8:
                todo.append(node.output[0])
    while todo:
        name = todo.pop()
        if name in found:
            continue
        if name in outputs:
            return None
        found.add(name)
        for user in consumers.get(name, []):
            positions = [i for i, n in enumerate(user.input) if n == name]
            if user.op_type == "DequantizeLinear" and positions == [0]:
                continue
            if user.op_type not in _SHIFTABLE or (_SHIFTABLE[user.op_type] is not None
                                                  and any(i not in _SHIFTABLE[user.op_type] for i in positions)):
                return None
            if user.op_type == "Clip" and not all(n in constants for n in user.input[1:] if n):
                return None
            data_outputs = user.output[:1] if user.op_type == "MaxPool" else user.output
            todo.extend(o for o in data_outputs if o)
    for node in graph.node:  # a Concat joins int8 activations only
        if node.op_type == "Concat" and any(n in found for n in node.input) and not all(n in found for n in node.input):
            return None
    return found


def activations_to_uint8(model) -> int:
    """Store the int8 activations of a QDQ `model` (a ModelProto, in place) as uint8, adding 128 to
    their zero points (and to the bounds of integer Clips on them); returns how many Q/DQ nodes changed.

    The values are the same (uint8 q + 128 with zero point zp + 128 dequantizes as int8 q with zp);
    ONNX Runtime's x86 CPU provider fuses DQ -> Conv -> Q into QLinearConv only for uint8 activations
    (int8 needs the `session.qdqisint8allowed` option, its default on ARM only), with int8 weights
    kept. Nothing changes when an int8 activation reaches an op whose result could depend on the
    shift (`_SHIFTABLE` lists those that cannot) or a graph output."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    found = _int8_activations(model, constants)
    if not found:
        return 0
    shifted: dict[str, str] = {}

    def uint8(name: str) -> str:
        if name not in shifted:
            value = _constant(constants, name).astype(np.int16) + 128
            shifted[name] = f"{name}_u8"
            graph.initializer.append(numpy_helper.from_array(value.astype(np.uint8), shifted[name]))
        return shifted[name]

    changed = 0
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] in found:
            node.input[2], changed = uint8(node.input[2]), changed + 1
        elif node.op_type == "DequantizeLinear" and node.input[0] in found:
            node.input[2], changed = uint8(node.input[2]), changed + 1
        elif node.op_type == "Clip" and node.input[0] in found:
            node.input[1:] = [uint8(n) if n else n for n in node.input[1:]]
    used = {name for node in graph.node for name in node.input}
    unused = [t for t in graph.initializer if t.name in shifted and t.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)
    for info in graph.value_info:
        if info.name in found and info.type.HasField("tensor_type"):
            info.type.tensor_type.elem_type = TensorProto.UINT8
    return changed


def rewrite_file(path: Path) -> dict:
    """`fold_activations`, then `activations_to_uint8`, then (on a CPU where ONNX Runtime's int8-weight
    kernels saturate) `saturation.weights_to_uint8`, on the .onnx file at `path`, saved in place when
    anything changed; returns the counts ({"activations_moved": n, "qdq_to_uint8": m, "weights_to_uint8": k})."""
    import onnx

    model = onnx.load(str(path))
    counts = {"activations_moved": fold_activations(model), "qdq_to_uint8": activations_to_uint8(model),
              "weights_to_uint8": weights_to_uint8(model) if saturates() else 0}
    if any(counts.values()):
        onnx.save(model, str(path))
    return counts
