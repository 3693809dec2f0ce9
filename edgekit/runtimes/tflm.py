"""Run .tflite files on TensorFlow Lite Micro, the interpreter of microcontrollers (and MLPerf Tiny).

A .tflite that runs on LiteRT can still fail on a microcontroller: TFLM has fewer kernels and runs
the model in one fixed tensor arena. This session runs the real TFLM kernels through the
`tflite-micro` package's host build (`tflite_micro.python.tflite_micro.runtime`), imported only when
a file is opened, and reports what an MCU build needs (`facts()`, in the file's report entry):

- `arena_bytes`: the smallest tensor arena with which TFLM allocates the model, searched for by
  `edgekit.runtimes.tflm_arena`; `arena_report_bytes`: what TFLM's own allocation report says it
  used. Both are measured with the host's 64-bit build: an MCU's 32-bit build has smaller pointers
  in the interpreter's own structs, so it needs the same or a little less.
- `flash_bytes`: the bytes of the model flashed with the firmware (the .tflite file itself).
- `latency_note`: the latency is the host CPU's time for TFLM's reference kernels, not MCU time.

A model with an op TFLM has no kernel for fails to open with a StageError naming the op(s), read
from TFLM's own log ("Didn't find op for builtin opcode 'TOPK_V2'").

Batching: TFLM runs the batch the file was made with; a dynamic batch dimension (shape_signature
-1, read from the flatbuffer) runs as a batch of 1, and the Session base class feeds one sample at a
time. TFLM is single-threaded: `threads` is recorded, not used.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgekit.errors import InputError, StageError
from edgekit.runtimes.base import Runtime, Session, TensorInfo, check_readable
from edgekit.runtimes.tflm_arena import allocation_report, smallest_arena

#: the arena the model is opened with: any model an MCU can hold fits (the search finds the real need)
OPEN_ARENA_BYTES = 64 * 1024 * 1024
LATENCY_NOTE = "host CPU time of TFLM's reference kernels, not MCU time"
_MISSING_OP = re.compile(r"Didn't find op for (?:builtin|custom) opcode '([^']+)'")


def tflm_version() -> str:
    from tflite_micro.python.tflite_micro import _version

    return str(getattr(_version, "__version__", "unknown"))


def _tensor_info(detail: dict, signature) -> TensorInfo:
    """TensorInfo from a TFLM `get_input_details(i)` / `get_output_details(i)` entry; `signature` is
    the tensor's shape_signature from the file (-1 for a dynamic dimension), when it has one."""
    shape = [int(d) for d in (signature if signature is not None and len(signature) else detail["shape"])]
    params = detail.get("quantization_parameters") or {}
    scales, zero_points = list(params.get("scales", [])), list(params.get("zero_points", []))
    dtype = np.dtype(detail["dtype"])
    quantized = len(scales) == 1 and bool(scales[0]) and np.issubdtype(dtype, np.integer)
    return TensorInfo(name=str(detail.get("name", "")), shape=shape, dtype=dtype.name,
                      scale=float(scales[0]) if quantized else None,
                      zero_point=int(zero_points[0]) if quantized else None)


class TFLMSession(Session):
    """One .tflite file in a TFLite Micro interpreter (its host build)."""

    runtime_name = "tflm"

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = check_readable(path, ".tflite")
        self.threads = int(threads)
        self._model = self.path.read_bytes()
        if len(self._model) < 8 or self._model[4:8] != b"TFL3":
            raise InputError(f"{self.path}: not a valid .tflite model (no 'TFL3' flatbuffer identifier; "
                             "the file is truncated, corrupt or of another format)")
        graph = self._graph()
        self._open()
        names = [graph.tensors[i] for i in graph.inputs], [graph.tensors[i] for i in graph.outputs]
        self.inputs = [_tensor_info({**self._interp.get_input_details(i), "name": _name(t)}, t.shapeSignature)
                       for i, t in enumerate(names[0])]
        self.outputs = [_tensor_info({**self._interp.get_output_details(i), "name": _name(t)}, t.shapeSignature)
                        for i, t in enumerate(names[1])]
        self._batch = int(self._interp.get_input_details(0)["shape"][0]) if self.inputs else 1
        self._facts: dict | None = None

    def _graph(self):
        """The file's first subgraph, parsed in Python (TFLM does not verify the flatbuffer, so a
        truncated file must be refused before it reaches the C++ interpreter)."""
        from tflite_micro.python.tflite_micro import runtime

        try:
            return runtime.convert_bytearray_to_object(bytearray(self._model)).subgraphs[0]
        except Exception as exc:
            raise InputError(f"{self.path}: not a valid .tflite model ({type(exc).__name__}: {exc})") from exc

    def _open(self) -> None:
        from tflite_micro.python.tflite_micro import runtime

        from edgekit.quiet import native_stderr_captured

        try:
            with native_stderr_captured() as log:
                self._interp = runtime.Interpreter.from_bytes(self._model, arena_size=OPEN_ARENA_BYTES)
        except Exception as exc:
            missing = sorted(set(_MISSING_OP.findall(log.text)))
            if missing:
                raise StageError("evaluate", f"{self.path}: TFLite Micro has no kernel for "
                                             f"{', '.join(missing)}; the model cannot run on a microcontroller "
                                             "with TFLM's builtin ops") from exc
            detail = " ".join(log.text.split())[-400:]
            raise StageError("evaluate", f"{self.path}: TFLite Micro {tflm_version()} could not allocate "
                                         f"the model in a {OPEN_ARENA_BYTES} byte arena ({exc}: {detail})") from exc

    # ---- Session hooks -----------------------------------------------------------------------
    def _resize(self, batch: int) -> bool:
        return batch == self._batch

    def _fixed_batch(self) -> int:
        return self._batch

    def _feed(self, x: np.ndarray) -> None:
        """Bind `x`, with the interpreter reset first: variable tensors (an LSTM's state) persist
        across invocations, as on LiteRT; the reset is outside `_invoke`, so latency excludes it."""
        self._interp.reset()
        self._interp.set_input(np.ascontiguousarray(x), 0)

    def _invoke(self) -> None:
        self._interp.invoke()

    def _fetch(self) -> np.ndarray:
        return np.array(self._interp.get_output(0), copy=True)

    def _version(self) -> str:
        return tflm_version()

    def _extra_description(self) -> dict:
        return {"kernels": "TFLM reference kernels (host build)", "flash_bytes": len(self._model),
                "arena_report_bytes": allocation_report(self._interp).get("total"),
                "latency_note": LATENCY_NOTE}

    def facts(self) -> dict:
        """arena_bytes (smallest arena that allocates), arena_report_bytes (TFLM's allocation
        report), flash_bytes (the .tflite) and the host-latency note; the search runs once."""
        if self._facts is None:
            reported = allocation_report(self._interp).get("total")
            try:
                arena = smallest_arena(self.path, reported, OPEN_ARENA_BYTES)
            except Exception as exc:
                raise StageError("evaluate", f"{self.path}: could not measure the TFLM arena ({exc})") from exc
            self._facts = {"arena_bytes": arena, "arena_report_bytes": reported, "flash_bytes": len(self._model),
                           "latency_note": LATENCY_NOTE}
        return dict(self._facts)

    def close(self) -> None:
        self._interp = None


def _name(tensor) -> str:
    name = tensor.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


class TFLMRuntime(Runtime):
    """TensorFlow Lite Micro (the `tflite-micro` package's interpreter) for .tflite files."""

    name = "tflm"
    file_format = "tflite"

    def open(self, path: str | Path, threads: int = 1) -> TFLMSession:
        return TFLMSession(path, threads)

    def version(self) -> str:
        return tflm_version()
