"""Run .onnx files on ONNX Runtime's CPU execution provider.

`onnxruntime` is imported only when a file is opened, so importing this module is cheap. Sessions use
`intra_op_num_threads=threads`, `inter_op_num_threads=1` and log severity 3 (errors only), so a
measurement with threads=1 really uses one core, and ORT's warnings never reach the user.

edgekit's .onnx exports keep float32 inputs and outputs (int8 models are QDQ graphs), so no
quantization is needed at the boundary; an integer input is simply cast. Symbolic batch dimensions
('N', 'batch', unnamed) are reported as -1 and batched; a batch dimension fixed in the file is used
as is (one sample at a time when it is 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import InputError, StageError
from edgekit.quiet import native_stderr_silenced
from edgekit.runtimes.base import Runtime, Session, TensorInfo, check_readable

# ONNX Runtime's type strings -> numpy dtype names.
_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(uint32)": "uint32", "tensor(int64)": "int64", "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}
# Load failures that mean the file is not a usable ONNX model (ORT exception class names).
_CORRUPT_ERRORS = {"InvalidProtobuf", "NoSuchFile", "InvalidGraph", "InvalidArgument"}


def _tensor_info(node_arg) -> TensorInfo:
    """TensorInfo from an ORT NodeArg; symbolic or unknown dimensions become -1."""
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (node_arg.shape or [])]
    return TensorInfo(name=node_arg.name, shape=shape, dtype=_DTYPES.get(node_arg.type, node_arg.type))


def ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


class OrtSession(Session):
    """One .onnx file in an `onnxruntime.InferenceSession` on CPUExecutionProvider."""

    runtime_name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime

        self.path = check_readable(path, ".onnx")
        self.threads = int(threads)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            with native_stderr_silenced():
                self._sess = onnxruntime.InferenceSession(str(self.path), options,
                                                          providers=["CPUExecutionProvider"])
        except Exception as exc:
            if type(exc).__name__ in _CORRUPT_ERRORS:
                raise InputError(f"{self.path}: not a valid .onnx model ({exc})") from exc
            raise StageError("evaluate", f"{self.path}: ONNX Runtime {ort_version()} cannot load the model "
                                         f"({exc})") from exc
        self.inputs = [_tensor_info(a) for a in self._sess.get_inputs()]
        self.outputs = [_tensor_info(a) for a in self._sess.get_outputs()]
        self._feeds: dict = {}
        self._result: list = []

    # ---- Session hooks -----------------------------------------------------------------------
    def _resize(self, batch: int) -> bool:
        first = self.input.shape[0] if self.input.shape else 1
        return first in (-1, batch)

    def _feed(self, x: np.ndarray) -> None:
        self._feeds = {self.input.name: x}

    def _invoke(self) -> None:
        self._result = self._sess.run(None, self._feeds)

    def _fetch(self) -> np.ndarray:
        return np.asarray(self._result[0])

    def _version(self) -> str:
        return ort_version()

    def _extra_description(self) -> dict:
        return {"providers": list(self._sess.get_providers())}

    def close(self) -> None:
        self._sess = None


class OnnxRuntime(Runtime):
    """ONNX Runtime (CPU) for .onnx files."""

    name = "onnxruntime"
    file_format = "onnx"

    def open(self, path: str | Path, threads: int = 1) -> OrtSession:
        return OrtSession(path, threads)

    def version(self) -> str:
        return ort_version()
