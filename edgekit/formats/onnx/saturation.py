"""Keep ONNX Runtime's int8 kernels from saturating on x86 CPUs without VNNI.

On an x86 CPU with no int8 dot-product instruction (AVX2 or AVX-512 without VNNI or AMX, e.g. AMD
Zen 3 or Intel before Cascade Lake), ONNX Runtime's U8S8 kernels (uint8 activations x int8 weights,
and S8S8, which it runs as U8S8) multiply with VPMADDUBSW, which adds each pair of products into a
saturated int16: 255 x 127 twice does not fit, and the sum is clipped. ONNX Runtime's quantization
guide names this case and its cures, 7-bit weights (`reduce_range`) or uint8 weights (U8U8 kernels,
which widen to int16 before multiplying and cannot saturate). Measured on such a CPU (AMD Zen 3), the
int8 .onnx files of digits CNNs with percentile / entropy calibration agreed with their float models on
76-84% of the samples, and above 90% with uint8 weights (tests/contract/test_calibration_rules.py).

`weights_to_uint8` is the exact cure: an int8 weight q with zero point zp is stored as the uint8
q + 128 with zero point zp + 128, which dequantizes to the same values, so the file computes what
the int8 one was meant to (and what the .tflite computes). It is applied to the int8 .onnx files
edgekit writes when `saturates()` says the CPU that measures them saturates; on any other CPU
(VNNI / AMX, Arm) int8 weights are faster and exact, and are kept. The report's
`quantization_choice` says which weight type the file has and why.
"""

from __future__ import annotations

import functools
from collections.abc import Set
from pathlib import Path

import numpy as np

#: x86 flags of the int8 dot-product instructions ONNX Runtime uses instead of VPMADDUBSW
DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: weight-bearing ops and the input that holds their weight
WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}
WHY = ("uint8 weights (zero point 128; the same values as int8): ONNX Runtime's int8-weight kernels "
       "saturate on x86 CPUs without VNNI / AMX, such as this one")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's extensions from /proc/cpuinfo: x86 `flags` or Arm `Features` (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    return frozenset(flag for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
                     for flag in line.split(":", 1)[1].split())


def saturates(flags: Set[str] | None = None) -> bool:
    """Whether ONNX Runtime multiplies int8 weights with VPMADDUBSW here: an x86 CPU with AVX2 (or
    only SSE4.1) and none of `DOT_PRODUCT_FLAGS`."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx2", "sse4_1"}) and not flags & set(DOT_PRODUCT_FLAGS)


def weights_to_uint8(model) -> int:
    """Store the int8 weights of a QDQ `model` (a ModelProto, in place) as uint8 with zero point + 128:
    every DequantizeLinear of a constant int8 tensor that feeds the weight input of a Conv,
    ConvTranspose, Gemm or MatMul. Returns how many weights changed."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    weight_inputs = {node.input[i] for node in graph.node for op, i in WEIGHT_INPUT.items()
                     if node.op_type == op and len(node.input) > i}
    shifted: dict[str, str] = {}

    def uint8(name: str) -> str:
        if name not in shifted:
            value = numpy_helper.to_array(constants[name]).astype(np.int16) + 128
            shifted[name] = f"{name}_u8"
            graph.initializer.append(numpy_helper.from_array(value.astype(np.uint8), shifted[name]))
        return shifted[name]

    changed = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.output[0] not in weight_inputs or len(node.input) < 3:
            continue
        weight, zero_point = constants.get(node.input[0]), constants.get(node.input[2])
        if weight is None or zero_point is None:
            continue
        if numpy_helper.to_array(weight).dtype != np.int8 or numpy_helper.to_array(zero_point).dtype != np.int8:
            continue
        node.input[0], node.input[2] = uint8(node.input[0]), uint8(node.input[2])
        changed += 1
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name in shifted and t.name not in used]:
        graph.initializer.remove(tensor)
    return changed


def unsaturate_file(path: Path) -> int:
    """`weights_to_uint8` on the .onnx file at `path`, saved in place when a weight changed."""
    import onnx

    model = onnx.load(str(path))
    changed = weights_to_uint8(model)
    if changed:
        onnx.save(model, str(path))
    return changed
