"""Tiny model files built in code, one builder per runtime, for the runtime contract suite and the
runtime-specific tests.

A builder takes a folder and returns `TinyModels`: a float file and an int8 file (plus any extra
variants the runtime has) of the same small dense classifier, test inputs, and the float outputs the
files must reproduce. A runtime added to `edgekit.runtimes.RUNTIMES` is covered by the contract suite
once `TINY_MODELS` has a builder for it.

TensorFlow, onnx and onnxruntime are used only to *make* files; edgekit's runtime code never imports
TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

N_FEATURES, N_HIDDEN, N_CLASSES = 8, 16, 4


@dataclass
class TinyModels:
    """Files of one classifier, N_FEATURES -> N_CLASSES softmax, for one runtime.

    `files` has at least "float" and "int8"; `io_dtypes[kind]` is the dtype the runtime reports for
    that file's input and output tensors (integer dtypes are quantized at the boundary); `names` are
    the float file's (input, output) tensor names; `params` the parameter count every file of the
    model has (edgekit.formats.files.param_count); `reference` is the float model's output on `x`,
    which the float file must reproduce within `float_tolerance`.
    """

    runtime: str
    version: str
    files: dict[str, Path]
    io_dtypes: dict[str, str]
    names: tuple[str, str]
    x: np.ndarray
    reference: np.ndarray
    params: int
    float_tolerance: dict = field(default_factory=dict)
    features: int = N_FEATURES
    classes: int = N_CLASSES
    fixed_batch: Optional[int] = None  # the batch a runtime that cannot resize runs (TFLite Micro: 1)
    batch_dim: int = -1  # the input's first dimension as the runtime reports it (-1: dynamic; a .pte's static 1)

    @property
    def quantized_kinds(self) -> list[str]:
        return [kind for kind in self.files if kind != "float"]


# ---- .tflite ------------------------------------------------------------------------------------

def tflite_models(folder: Path) -> TinyModels:
    """A dense classifier as float .tflite, full-int8 .tflite and uint8-I/O .tflite, made with TensorFlow."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = pytest.importorskip("tensorflow")
    ai_edge_litert = pytest.importorskip("ai_edge_litert")
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((N_FEATURES, N_HIDDEN)).astype(np.float32)
    w2 = rng.standard_normal((N_HIDDEN, N_CLASSES)).astype(np.float32)
    b2 = np.linspace(-0.5, 0.5, N_CLASSES).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32)])
    def model(x):
        return tf.nn.softmax(tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2) + b2)

    calib = rng.uniform(-1, 1, (128, N_FEATURES)).astype(np.float32)

    def convert(io_type=None):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
        if io_type is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
        return converter.convert()

    files = {}
    for name, io_type in (("float", None), ("int8", tf.int8), ("uint8", tf.uint8)):
        files[name] = folder / f"{name}.tflite"
        files[name].write_bytes(convert(io_type))
    x = rng.uniform(-1, 1, (200, N_FEATURES)).astype(np.float32)
    return TinyModels(
        runtime="litert", version=ai_edge_litert.__version__, files=files,
        io_dtypes={"float": "float32", "int8": "int8", "uint8": "uint8"},
        names=("x", "Identity"), params=N_FEATURES * N_HIDDEN + N_HIDDEN * N_CLASSES + N_CLASSES,
        x=x, reference=model(x).numpy(), float_tolerance={"atol": 1e-5})


def tflm_models(folder: Path) -> TinyModels:
    """The .tflite files of `tflite_models`, run on TensorFlow Lite Micro (batch 1, one sample at a time)."""
    from edgekit.runtimes.tflm import tflm_version

    models = tflite_models(folder)
    models.runtime, models.version, models.fixed_batch = "tflm", tflm_version(), 1
    return models


# ---- .onnx --------------------------------------------------------------------------------------

def onnx_model(nodes, inputs, outputs, initializers, name: str = "model"):
    """An opset-17, IR-8 ModelProto of the given graph, checked by onnx.checker."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def mlp_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """w1 (8, 16), b1 (16,), w2 (16, 4), b2 (4,): standard-normal float32 weights of `onnx_mlp`."""
    rng = np.random.default_rng(seed)
    shapes = {"w1": (N_FEATURES, N_HIDDEN), "b1": (N_HIDDEN,), "w2": (N_HIDDEN, N_CLASSES), "b2": (N_CLASSES,)}
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}


def mlp_reference(x: np.ndarray, weights: dict[str, np.ndarray]) -> np.ndarray:
    """What `onnx_mlp` computes, in numpy: softmax(relu(x @ w1 + b1) @ w2 + b2)."""
    logits = np.maximum(x @ weights["w1"] + weights["b1"], 0) @ weights["w2"] + weights["b2"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def onnx_mlp(path: Path, middle: str = "Relu") -> None:
    """x[N,8] -> Gemm -> `middle` -> Gemm -> Softmax -> y[N,4], float32, with `mlp_weights()`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(value, name) for name, value in mlp_weights().items()]
    middle_node = (helper.make_node("Relu", ["h"], ["r"], name="relu") if middle == "Relu" else
                   helper.make_node("CumSum", ["h", "axis"], ["r"], name="cumsum"))
    if middle != "Relu":
        inits.append(numpy_helper.from_array(np.array(1, np.int64), "axis"))
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"), middle_node,
             helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], name="fc2"),
             helper.make_node("Softmax", ["logits"], ["y"], axis=-1, name="softmax")]
    model = onnx_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_FEATURES])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", N_CLASSES])], inits, "mlp")
    onnx.save(model, str(path))


def quantize_qdq(source: Path, target: Path, **options) -> None:
    """ONNX Runtime's static QDQ int8 quantization of an `onnx_mlp` file (per channel, int8
    activations, 7-bit weights), calibrated on 16 standard-normal samples. `reduce_range` is ONNX
    Runtime's advice for x86 CPUs without VNNI, whose int8 kernels saturate with full-range weights
    (`edgekit.formats.onnx.saturation`); elsewhere it only costs a bit of precision."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(1)
            self._it = iter([{"x": rng.standard_normal((1, N_FEATURES)).astype(np.float32)} for _ in range(16)])

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    reduce_range=True, **options)


def onnx_models(folder: Path) -> TinyModels:
    """`onnx_mlp` as a float .onnx and its QDQ int8 .onnx (float I/O, as edgekit exports them)."""
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    files = {"float": folder / "float.onnx", "int8": folder / "int8.onnx"}
    onnx_mlp(files["float"])
    quantize_qdq(files["float"], files["int8"])
    x = np.random.default_rng(2).uniform(-1, 1, (200, N_FEATURES)).astype(np.float32)
    return TinyModels(
        runtime="onnxruntime", version=onnxruntime.__version__, files=files,
        io_dtypes={"float": "float32", "int8": "float32"}, names=("x", "y"),
        params=sum(w.size for w in mlp_weights().values()),
        x=x, reference=mlp_reference(x, mlp_weights()), float_tolerance={"rtol": 1e-5, "atol": 1e-6})


# ---- .pte ---------------------------------------------------------------------------------------

def pte_models(folder: Path) -> TinyModels:
    """The `onnx_mlp` classifier (same weights) as a torch module, lowered to XNNPACK as a float .pte
    and an int8 .pte (XNNPACK's PT2E quantizer, float I/O) by edgekit's writer; a static batch of 1."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("executorch")
    from edgekit.formats.pte.torch import to_pte
    from edgekit.precision import plan_for
    from edgekit.runtimes.executorch import executorch_version

    weights = mlp_weights()

    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(N_FEATURES, N_HIDDEN), torch.nn.Linear(N_HIDDEN, N_CLASSES)
            with torch.no_grad():
                for layer, w, b in ((self.fc1, "w1", "b1"), (self.fc2, "w2", "b2")):
                    layer.weight.copy_(torch.from_numpy(weights[w].T.copy()))
                    layer.bias.copy_(torch.from_numpy(weights[b]))

        def forward(self, x):
            return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)

    calibration = np.random.default_rng(1).uniform(-1, 1, (128, N_FEATURES)).astype(np.float32)
    files = {"float": folder / "float.pte", "int8": folder / "int8.pte"}
    to_pte(Mlp().eval(), files["float"], None, calibration)
    to_pte(Mlp().eval(), files["int8"], plan_for("int8", "float32"), calibration)
    x = np.random.default_rng(2).uniform(-1, 1, (200, N_FEATURES)).astype(np.float32)
    return TinyModels(
        runtime="executorch", version=executorch_version(), files=files,
        io_dtypes={"float": "float32", "int8": "float32"}, names=("input_0", "output_0"),
        params=sum(w.size for w in weights.values()), x=x, reference=mlp_reference(x, weights),
        float_tolerance={"rtol": 1e-5, "atol": 1e-6}, fixed_batch=1, batch_dim=1)


#: runtime name (as in edgekit.runtimes.RUNTIMES) -> builder of its tiny files
TINY_MODELS: dict[str, Callable[[Path], TinyModels]] = {
    "litert": tflite_models,
    "tflm": tflm_models,
    "onnxruntime": onnx_models,
    "executorch": pte_models,
}
