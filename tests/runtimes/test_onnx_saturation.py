"""int8 weights stored as uint8 where ONNX Runtime's int8-weight kernels saturate
(`edgekit.formats.onnx.saturation`): which CPUs, the rewrite's exactness, and its effect on ORT.

The file is ONNX Runtime's own S8S8 QDQ quantization of a two-layer MLP with full-range int8
weights (`tests.contract.models`). Op by op (no fusion) the rewritten file computes exactly what the
original does; ORT's fused kernels then agree with that to within int8 rounding, which the U8S8
kernels of an x86 CPU without VNNI do not (measured on an AMD Zen 3: max error 0.475 against 0.06).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from edgekit.formats.onnx.saturation import saturates, unsaturate_file, weights_to_uint8  # noqa: E402
from tests.contract import models  # noqa: E402


@pytest.mark.parametrize("flags, expected", [
    ({"sse4_1", "avx2", "fma"}, True),  # AMD Zen 3, Intel Haswell to Skylake: VPMADDUBSW
    ({"avx2", "avx512f", "avx512bw"}, True),  # Skylake-SP: AVX-512 without VNNI
    ({"avx2", "avx512f", "avx512_vnni"}, False),  # Cascade Lake and later
    ({"avx2", "avx_vnni"}, False),  # Alder Lake
    ({"avx2", "avx512f", "amx_int8", "avx512_vnni"}, False),  # Sapphire Rapids
    (set(), False),  # Arm (its /proc/cpuinfo lists Features, not flags) or no /proc/cpuinfo
])
def test_which_cpus_saturate(flags, expected):
    assert saturates(flags) is expected


def _run(path, x, optimized: bool):
    options = ort.SessionOptions()
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_uint8_weights_give_the_same_values_and_ort_runs_them_unsaturated(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self._it = iter([{"x": rng.standard_normal((1, models.N_FEATURES)).astype(np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self._it, None)

    models.onnx_mlp(tmp_path / "float.onnx")
    int8, uint8 = tmp_path / "int8.onnx", tmp_path / "uint8.onnx"
    quantize_static(str(tmp_path / "float.onnx"), str(int8), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    uint8.write_bytes(int8.read_bytes())
    assert unsaturate_file(uint8) == 2  # fc1's and fc2's weights
    graph = onnx.load(str(uint8)).graph
    weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.UINT8 and len(t.dims) == 2]
    assert len(weights) == 2 and not [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights_to_uint8(onnx.load(str(uint8))) == 0  # nothing left to rewrite

    x = np.random.default_rng(2).uniform(-1, 1, (200, models.N_FEATURES)).astype(np.float32)
    np.testing.assert_array_equal(_run(int8, x, optimized=False), _run(uint8, x, optimized=False))
    reference = models.mlp_reference(x, models.mlp_weights())
    assert np.abs(_run(uint8, x, optimized=True) - reference).max() < 0.2
