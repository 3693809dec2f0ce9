"""Run .pte files on ExecuTorch's runtime (its Python bindings, with the XNNPACK backend built in).

`executorch.runtime` is imported only when a file is opened. The bindings take and return torch
tensors, so this session converts at the boundary; edgekit's .pte files keep float32 inputs and
outputs (the int8 quantize / dequantize run inside the XNNPACK delegate), so nothing is quantized here.

Batching: ExecuTorch plans memory for the shapes the program was exported with, and edgekit exports a
static batch of 1, so the Session base class feeds one sample at a time (`_resize` accepts the file's
own batch only), as for TFLite Micro. ExecuTorch keeps no tensor names: inputs and outputs are
`input_0`, `output_0`, ... by position, as apps address them.

Threads: XNNPACK runs on ExecuTorch's one process-wide threadpool. Its size is set with the bindings'
`_unsafe_reset_threadpool(threads)` (the only setter ExecuTorch's Python API has; "unsafe" because
the pool is shared, so it is called only between runs, never while a method executes, under a lock)
before the file is loaded and again before a run of a session whose thread count differs from the
pool's, so each session runs with the threads it was opened with; `pool_threads()` reads the pool back.

Native code prints cpuinfo lines and the threadpool resets on fd 2 at load time: they are silenced
(`edgekit.quiet.native_stderr_silenced`), unless `--debug`.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edgekit.errors import InputError, StageError
from edgekit.quiet import native_stderr_silenced
from edgekit.runtimes.base import Runtime, Session, TensorInfo, check_readable

_POOL_LOCK = threading.Lock()
PTE_IDENTIFIER = b"ET12"  # bytes 4..8 of a .pte: the flatbuffer identifier of ExecuTorch's program schema
#: ExecuTorch ScalarType names (MethodMeta's TensorInfo.dtype()) -> numpy-style names
_DTYPES = {"Float": "float32", "Double": "float64", "Half": "float16", "Char": "int8", "Byte": "uint8",
           "Short": "int16", "Int": "int32", "Long": "int64", "Bool": "bool", "BFloat16": "bfloat16"}
_DTYPE_CODES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool", 15: "bfloat16"}


def executorch_version() -> str:
    from executorch import version

    return str(getattr(version, "__version__", "unknown")).split("+")[0]


def _bindings():
    with native_stderr_silenced():
        from executorch.extension.pybindings import portable_lib

    return portable_lib


def pool_threads() -> int:
    """The size of ExecuTorch's process-wide threadpool (what XNNPACK runs on). The first call
    creates the pool, whose cpuinfo probe logs on fd 2: silenced."""
    with native_stderr_silenced():
        return int(_bindings()._threadpool_get_thread_count())


def use_threads(threads: int) -> None:
    """Size ExecuTorch's threadpool to `threads` when it is another size (see the module docstring)."""
    with _POOL_LOCK, native_stderr_silenced():
        if pool_threads() != threads:
            _bindings()._unsafe_reset_threadpool(int(threads))


def _tensor_info(name: str, meta) -> TensorInfo:
    dtype = meta.dtype()
    key = getattr(dtype, "name", None) or str(dtype).split(".")[-1]
    if isinstance(dtype, int) or key.isdigit():
        name_of = _DTYPE_CODES.get(int(dtype), str(dtype))
    else:
        name_of = _DTYPES.get(key, key.lower())
    return TensorInfo(name=name, shape=[int(d) for d in meta.sizes()], dtype=name_of)


class ExecuTorchSession(Session):
    """One .pte file: its `forward` method loaded in ExecuTorch's runtime."""

    runtime_name = "executorch"

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = check_readable(path, ".pte")
        self.threads = int(threads)
        data = self.path.read_bytes()
        if len(data) < 8 or data[4:8] != PTE_IDENTIFIER:
            raise InputError(f"{self.path}: not a valid .pte model (no 'ET12' ExecuTorch program identifier; "
                             "the file is truncated, corrupt or of another format)")
        import torch

        from executorch.runtime import Runtime as _Runtime, Verification

        self._torch = torch
        use_threads(self.threads)
        try:
            with native_stderr_silenced():
                program = _Runtime.get().load_program(data, verification=Verification.InternalConsistency)
                if "forward" not in program.method_names:
                    raise InputError(f"{self.path}: the ExecuTorch program has no 'forward' method "
                                     f"(methods: {', '.join(sorted(program.method_names))})")
                self._method = program.load_method("forward")
        except InputError:
            raise
        except Exception as exc:  # the bindings raise RuntimeError for a corrupt or truncated program
            raise InputError(f"{self.path}: not a valid .pte model ({' '.join(str(exc).split())[:300]})") from exc
        self._program = program  # the method borrows from the program: keep it alive
        meta = self._method.metadata
        self.inputs = [_tensor_info(f"input_{i}", meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
        self.outputs = [_tensor_info(f"output_{i}", meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]
        self._batch = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else 1
        self._bound: list = []
        self._result: list = []

    # ---- Session hooks -----------------------------------------------------------------------
    def _resize(self, batch: int) -> bool:
        return batch == self._batch

    def _fixed_batch(self) -> int:
        return self._batch

    def _feed(self, x: np.ndarray) -> None:
        """Bind `x` as a torch tensor; the threadpool is sized here, outside the timed `_invoke`."""
        use_threads(self.threads)
        self._bound = [self._torch.from_numpy(np.ascontiguousarray(x))]

    def _invoke(self) -> None:
        self._result = self._method.execute(self._bound)

    def _fetch(self) -> np.ndarray:
        return np.array(self._result[0].detach().numpy(), copy=True)

    def _version(self) -> str:
        return executorch_version()

    def _extra_description(self) -> dict:
        return {"backends": sorted(_bindings()._get_registered_backend_names()),
                "threadpool_threads": pool_threads(), "fixed_batch": self._batch}

    def close(self) -> None:
        self._method = None
        self._program = None


class ExecuTorchRuntime(Runtime):
    """ExecuTorch (the `executorch` package's runtime bindings, XNNPACK backend) for .pte files."""

    name = "executorch"
    file_format = "pte"

    def open(self, path: str | Path, threads: int = 1) -> ExecuTorchSession:
        return ExecuTorchSession(path, threads)

    def version(self) -> str:
        return executorch_version()
