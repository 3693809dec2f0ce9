"""Run .tflite files on LiteRT (the `ai_edge_litert` interpreter), the runtime mobile apps ship.

`ai_edge_litert` is imported only when a file is opened, so importing this module is cheap and never
pulls in TensorFlow. The interpreter is created with its default op resolver (AUTO), which applies
the XNNPACK delegate on CPU, exactly as an app using the default LiteRT interpreter would;
`describe()["xnnpack"]` reports whether the delegate actually took any part of the graph, and
`describe()["undelegated_ops"]` which ops LiteRT runs with its own kernels instead (honest flags
name them, `edgekit.run.verdicts`).

Batching: the batch dimension is resized (`resize_tensor_input` + `allocate_tensors`) when the file
allows it (shape_signature[0] == -1, or a batch of 1). Some graphs refuse, e.g. an
UNIDIRECTIONAL_SEQUENCE_LSTM whose state tensors are sized for batch 1; the session then restores its
original shape and runs one sample at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import InputError, StageError
from edgekit.quiet import native_stderr_silenced
from edgekit.runtimes.base import Runtime, Session, TensorInfo, check_readable

# Interpreter messages that mean the file itself is not a usable .tflite flatbuffer.
_CORRUPT_HINTS = ("flatbuffer", "could not open", "allocation is null", "model is null", "mmap")


def _tensor_info(detail: dict) -> TensorInfo:
    """TensorInfo from one `get_input_details()` / `get_output_details()` entry."""
    signature = detail.get("shape_signature")
    shape = signature if signature is not None and len(signature) else detail["shape"]
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = bool(scale) and np.issubdtype(np.dtype(detail["dtype"]), np.integer)
    return TensorInfo(
        name=str(detail["name"]),
        shape=[int(d) for d in shape],
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale) if quantized else None,
        zero_point=int(zero_point) if quantized else None,
    )


def litert_version() -> str:
    import ai_edge_litert

    return str(getattr(ai_edge_litert, "__version__", "unknown"))


class LiteRTSession(Session):
    """One .tflite file loaded in an `ai_edge_litert` Interpreter with `threads` CPU threads."""

    runtime_name = "litert"

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = check_readable(path, ".tflite")
        self.threads = int(threads)
        with open(self.path, "rb") as fh:
            head = fh.read(8)
        if len(head) < 8 or head[4:8] != b"TFL3":
            raise InputError(f"{self.path}: not a valid .tflite model (no 'TFL3' flatbuffer identifier; "
                             "the file is truncated, corrupt or of another format)")
        self._open()
        self.inputs = [_tensor_info(d) for d in self._interp.get_input_details()]
        self.outputs = [_tensor_info(d) for d in self._interp.get_output_details()]
        self._input_shape = [int(d) for d in self._interp.get_input_details()[0]["shape"]] if self.inputs else []
        self._batch = self._input_shape[0] if self._input_shape else 1
        self._can_resize = bool(self.inputs) and (self.inputs[0].shape[:1] == [-1] or self._batch == 1)

    def _open(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_stderr_silenced():
                self._interp = Interpreter(model_path=str(self.path), num_threads=self.threads)
        except ValueError as exc:
            if any(h in str(exc).lower() for h in _CORRUPT_HINTS):
                raise InputError(f"{self.path}: not a valid .tflite model ({exc})") from exc
            raise StageError("evaluate", f"{self.path}: LiteRT {litert_version()} cannot load the model "
                                         f"({exc}); it may use ops this runtime lacks") from exc
        try:
            with native_stderr_silenced():
                self._interp.allocate_tensors()
        except Exception as exc:
            raise StageError("evaluate", f"{self.path}: LiteRT could not allocate the model's tensors ({exc})") from exc
        details = self._interp.get_input_details()
        self._in_index = [d["index"] for d in details]
        self._out_index = [d["index"] for d in self._interp.get_output_details()]

    # ---- Session hooks -----------------------------------------------------------------------
    def _resize(self, batch: int) -> bool:
        if batch == self._batch:
            return True
        if not self._can_resize:
            return False
        index = self._in_index[0]
        try:
            self._interp.resize_tensor_input(index, [batch] + self._input_shape[1:])
            self._interp.allocate_tensors()
        except Exception:
            self._can_resize = False  # one failure is enough: the graph is tied to its batch size
            try:
                self._interp.resize_tensor_input(index, [self._batch] + self._input_shape[1:])
                self._interp.allocate_tensors()
            except Exception:
                self._open()  # a failed allocation can leave the interpreter unusable: start afresh
                self._batch = self._input_shape[0]
            return False
        self._batch = batch
        return True

    def _feed(self, x: np.ndarray) -> None:
        """Bind `x`, with the model's variable tensors reset first: TFLite's fused recurrent ops
        (UNIDIRECTIONAL_SEQUENCE_LSTM of a Keras LSTM) keep their output and cell state in variable
        tensors that persist across invocations, so without the reset each sample would start from
        the previous sample's final state. Models without variable tensors are unaffected; the reset
        is outside `_invoke`, so latency does not include it."""
        self._interp.reset_all_variables()
        self._interp.set_tensor(self._in_index[0], x)

    def _invoke(self) -> None:
        self._interp.invoke()

    def _fetch(self) -> np.ndarray:
        return self._interp.get_tensor(self._out_index[0])

    def _version(self) -> str:
        return litert_version()

    def _extra_description(self) -> dict:
        return {"op_resolver": "AUTO (builtin kernels + default XNNPACK delegate)", **self._delegation()}

    def _delegation(self) -> dict:
        """Whether the default XNNPACK delegate took part of the graph: it adds DELEGATE nodes."""
        try:
            ops = self._interp._get_ops_details()  # noqa: SLF001 - the only public-ish view of nodes
        except Exception:
            return {"xnnpack": None, "delegate_nodes": None, "undelegated_ops": None}
        delegates = sum(1 for op in ops if op.get("op_name") == "DELEGATE")
        return {"xnnpack": delegates > 0, "delegate_nodes": delegates, "undelegated_ops": _undelegated(ops)}

    def close(self) -> None:
        self._interp = None


def _undelegated(ops: list[dict]) -> dict[str, int]:
    """Op histogram of the nodes LiteRT runs with its own kernels, outside the XNNPACK delegate.

    The interpreter lists every node of the file plus one DELEGATE node per delegated partition; a
    node belongs to a partition when it lies on a path from the partition's inputs to its outputs
    (walked back from the outputs through the nodes that produce each tensor)."""
    originals = [op for op in ops if op.get("op_name") != "DELEGATE"]
    producer = {int(t): op for op in originals for t in op.get("outputs", [])}
    delegated: set[int] = set()
    for node in ops:
        if node.get("op_name") != "DELEGATE":
            continue
        stop = {int(t) for t in node.get("inputs", [])}
        pending = [int(t) for t in node.get("outputs", [])]
        while pending:
            tensor = pending.pop()
            op = producer.get(tensor)
            if tensor in stop or op is None or op["index"] in delegated:
                continue
            delegated.add(op["index"])
            pending.extend(int(t) for t in op.get("inputs", []))
    found: dict[str, int] = {}
    for op in originals:
        if op["index"] not in delegated:
            found[str(op["op_name"])] = found.get(str(op["op_name"]), 0) + 1
    return found


class LiteRTRuntime(Runtime):
    """LiteRT (ai_edge_litert) for .tflite files."""

    name = "litert"
    file_format = "tflite"

    def open(self, path: str | Path, threads: int = 1) -> LiteRTSession:
        return LiteRTSession(path, threads)

    def version(self) -> str:
        return litert_version()
