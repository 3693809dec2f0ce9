"""The Runtime protocol: open an exported file on its deployment runtime and run it.

Every number in an edgekit report comes from running the shipped file (DESIGN.md), so each runtime
(LiteRT and TFLite Micro for .tflite, ONNX Runtime for .onnx) is wrapped in the same small `Session` interface:

    session = get_runtime("litert").open("model.tflite", threads=1)
    scores = session.predict(x_float32)          # quantizes / dequantizes int8 I/O itself
    session.latency(warmup=10, runs=100)         # {"p50": ..., "p90": ..., ...} in ms

The batching, (de)quantization and timing logic lives here once; a runtime module only implements
a few small hooks (`_resize`, `_feed`, `_invoke`, `_fetch`, `_version`, `_extra_description`), and
`facts()` when it measures something of its own for the report. This module imports
no runtime library, so it is cheap to import.
"""

from __future__ import annotations

import abc
import dataclasses
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from edgekit.errors import InputError, StageError

Progress = Callable[[int, int], None]


@dataclasses.dataclass
class TensorInfo:
    """One input or output tensor of a model as its runtime sees it.

    `shape` includes the batch dimension; -1 marks a dynamic dimension. `scale` / `zero_point` are
    the per-tensor quantization parameters (None for float tensors): real = scale * (q - zero_point).
    """

    name: str
    shape: list[int]
    dtype: str
    scale: Optional[float] = None
    zero_point: Optional[int] = None

    @property
    def quantized(self) -> bool:
        return self.scale is not None and np.issubdtype(np.dtype(self.dtype), np.integer)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """float32 -> the tensor's dtype, using that tensor's own scale / zero point (round, then clip)."""
    dtype = np.dtype(info.dtype)
    if info.quantized:
        if not info.scale:
            raise StageError("evaluate", f"input '{info.name}' is {info.dtype} with a zero quantization scale")
        q = np.round(np.asarray(x, np.float32) / np.float32(info.scale)) + info.zero_point
        limits = np.iinfo(dtype)
        return np.clip(q, limits.min, limits.max).astype(dtype)
    if np.issubdtype(dtype, np.integer):
        return np.round(x).astype(dtype)
    return np.asarray(x, dtype=dtype)


def dequantize(y: np.ndarray, info: TensorInfo) -> np.ndarray:
    """The tensor's dtype -> float32 (identity for float tensors)."""
    if info.quantized:
        return ((y.astype(np.float32) - np.float32(info.zero_point)) * np.float32(info.scale)).astype(np.float32)
    return y.astype(np.float32, copy=False)


def latency_summary(times_ns: list[int]) -> dict:
    """Percentiles and mean of invocation times, in milliseconds."""
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(ms.mean()),
            "min": float(ms.min()), "max": float(ms.max())}


class Session(abc.ABC):
    """A model file opened on a runtime, ready to run.

    Subclasses fill `inputs`, `outputs`, `threads`, `path` and implement the hooks below. Batches are
    quantized one at a time, so at most one batch of converted input exists at once.
    """

    runtime_name: str = "?"
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    threads: int
    path: Path

    # ---- hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _resize(self, batch: int) -> bool:
        """Make the session accept `batch` samples per call; False (session unchanged) if it cannot.

        Cheap when the session is already at that batch size.
        """

    @abc.abstractmethod
    def _feed(self, x: np.ndarray) -> None:
        """Bind one batch, already in the input tensor's dtype."""

    @abc.abstractmethod
    def _invoke(self) -> None:
        """Run the model on the bound batch (the only call that `latency` times)."""

    @abc.abstractmethod
    def _fetch(self) -> np.ndarray:
        """The first output of the last invocation, in its own dtype (a copy)."""

    @abc.abstractmethod
    def _version(self) -> str:
        """The runtime library's version."""

    def _extra_description(self) -> dict:
        return {}

    def facts(self) -> dict:
        """Figures only this runtime gives, for the file's entry in report.json beside its accuracy and
        latency (TFLite Micro's arena and flash bytes); {} for most runtimes. May take a moment."""
        return {}

    # ---- shared logic ------------------------------------------------------------------------
    @property
    def input(self) -> TensorInfo:
        if len(self.inputs) != 1:
            names = [t.name for t in self.inputs]
            raise InputError(f"{self.path}: the model has {len(self.inputs)} inputs {names}; "
                             "edgekit evaluates single-input models only")
        return self.inputs[0]

    def _fixed_batch(self) -> int:
        """The batch size the file was exported with (1 when the batch dimension is dynamic)."""
        first = self.input.shape[0] if self.input.shape else 1
        return first if first > 0 else 1

    def _set_batch(self, batch: int) -> None:
        if not self._resize(batch):
            raise StageError("evaluate", f"{self.path}: {self.runtime_name} cannot run the model "
                                         f"with its own batch size {batch}")

    def _run_batch(self, raw: np.ndarray) -> np.ndarray:
        try:
            self._feed(raw)
            self._invoke()
            return self._fetch()
        except Exception as exc:  # a valid file that fails while running
            raise StageError("evaluate", f"{self.path}: {self.runtime_name} failed to run the model "
                                         f"on a batch of shape {list(raw.shape)}: {exc}") from exc

    def _check_shape(self, x: np.ndarray) -> None:
        expected = self.input.shape[1:]
        got = list(x.shape[1:])
        if len(got) != len(expected) or any(e not in (-1, g) for e, g in zip(expected, got)):
            raise InputError(f"{self.path}: the model expects samples of shape {expected} "
                             f"(input '{self.input.name}'), but the data has samples of shape {got}; "
                             "check data.layout and the model's input layout")

    def predict(self, x: np.ndarray, batch_size: int = 64, progress: Optional[Progress] = None) -> np.ndarray:
        """Run float32, preprocessed samples `x` (n, ...) and return the first output as float32 (n, ...).

        int8/uint8 inputs are quantized with the input tensor's own scale / zero point, int8/uint8
        outputs dequantized with the output's. Samples go through in batches of `batch_size` when the
        batch dimension can be resized, otherwise in the batch size the file was exported with (the
        last batch zero-padded). `progress(done, total)` is called after each batch.
        """
        info, out = self.input, self.outputs[0]
        if not (hasattr(x, "shape") and hasattr(x, "__getitem__")):  # a DiskArray is read batch by batch
            x = np.asarray(x)
        self._check_shape(x)
        n = len(x)
        if n == 0:
            return np.zeros([0] + [max(d, 1) for d in out.shape[1:]], np.float32)
        step = max(1, min(int(batch_size), n))
        resizable = self._resize(step)
        if not resizable:
            step = self._fixed_batch()
            self._set_batch(step)
        results = []
        for start in range(0, n, step):
            chunk = x[start:start + step]
            k = len(chunk)
            if k < step:
                if resizable and self._resize(k):
                    step = k
                else:  # pad to the batch the session is set to
                    pad = np.zeros((step - k,) + chunk.shape[1:], chunk.dtype)
                    chunk = np.concatenate([chunk, pad])
            y = self._run_batch(quantize(chunk, info))
            results.append(dequantize(y[:k], out))
            if progress is not None:
                progress(min(start + k, n), n)
        return np.concatenate(results)

    def sample_input(self, batch: int, seed: int = 0) -> np.ndarray:
        """A fixed random input of the input tensor's dtype and shape, for benchmarking."""
        info = self.input
        shape = [batch] + [d if d > 0 else 1 for d in info.shape[1:]]
        rng = np.random.default_rng(seed)
        dtype = np.dtype(info.dtype)
        if np.issubdtype(dtype, np.integer):
            limits = np.iinfo(dtype)
            return rng.integers(limits.min, int(limits.max) + 1, size=shape, dtype=dtype)
        if dtype == np.bool_:
            return rng.integers(0, 2, size=shape).astype(bool)
        return rng.standard_normal(shape).astype(dtype)

    def latency(self, warmup: int, runs: int, batch: int = 1,
                progress: Optional[Callable[[int, int], None]] = None) -> dict:
        """Time `runs` invocations after `warmup` untimed ones on a fixed random input.

        Only the runtime's invoke / run call is inside the timer (time.perf_counter_ns); `progress(done,
        total)` is called between timed runs, about 20 times in all. When the batch dimension cannot
        be resized, the file's own batch size is used and reported.
        """
        if runs < 1:
            raise ValueError(f"latency needs at least one timed run, got runs={runs}")
        if not self._resize(batch):
            batch = self._fixed_batch()
            self._set_batch(batch)
        raw = self.sample_input(batch)
        try:
            self._feed(raw)
            for _ in range(max(0, int(warmup))):
                self._invoke()
            times = []
            every = max(1, int(runs) // 20)
            for i in range(int(runs)):
                t0 = time.perf_counter_ns()
                self._invoke()
                times.append(time.perf_counter_ns() - t0)
                if progress is not None and ((i + 1) % every == 0 or i + 1 == runs):
                    progress(i + 1, int(runs))
        except Exception as exc:
            raise StageError("evaluate", f"{self.path}: {self.runtime_name} failed while timing "
                                         f"the model: {exc}") from exc
        summary = latency_summary(times)
        summary.update(runs=int(runs), warmup=int(warmup), batch=int(batch), threads=self.threads)
        return summary

    def describe(self) -> dict:
        """Inputs, outputs, runtime name and version, threads, plus runtime-specific facts."""
        info = {
            "runtime": self.runtime_name,
            "version": self._version(),
            "path": str(self.path),
            "threads": self.threads,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }
        info.update(self._extra_description())
        return info

    def close(self) -> None:
        """Release the runtime's resources (optional; garbage collection does the same)."""

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Runtime(abc.ABC):
    """A deployment runtime: `name` (as in the recipe), the `file_format` it runs, and `open`."""

    name: str = "?"
    file_format: str = "?"

    @abc.abstractmethod
    def open(self, path: str | Path, threads: int = 1) -> Session:
        """Load `path` and return a ready Session; InputError when the file is unreadable or corrupt."""

    def version(self) -> str:
        """The runtime library's version (imports the library)."""
        raise NotImplementedError


def check_readable(path: str | Path, suffix: str) -> Path:
    """Return `path` as a Path, or raise InputError when it is missing or not a file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: model file not found")
    if not p.is_file():
        raise InputError(f"{p}: expected a {suffix} model file, found a directory")
    return p
