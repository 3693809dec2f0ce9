"""Silence the native log noise of TensorFlow, LiteRT and ONNX Runtime.

TensorFlow's C++ core writes CUDA, oneDNN and absl messages straight to file descriptor 2, which
no Python logging setting reaches. `native_stderr_silenced()` points fd 2 at /dev/null around the
noisy call and restores it after, unless `--debug` asked to see everything (EDGEKIT_DEBUG=1).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings

_lock = threading.RLock()
_depth = 0
_saved_fd: int | None = None

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_USE_LEGACY_KERAS": "1",
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "3",
    "ABSL_MIN_LOG_LEVEL": "3",
}


def debugging() -> bool:
    return os.environ.get("EDGEKIT_DEBUG") == "1"


def quiet_environment() -> None:
    """Set the environment variables that make TensorFlow quiet; must run before it is imported."""
    for key, value in QUIET_ENV.items():
        if key == "TF_USE_LEGACY_KERAS" or not debugging():
            os.environ.setdefault(key, value)


@contextlib.contextmanager
def native_stderr_silenced():
    """Redirect fd 2 to /dev/null for the duration (re-entrant); Python's sys.stderr is kept."""
    global _depth, _saved_fd
    if debugging():
        yield
        return
    with _lock:
        if _depth == 0:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            _saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _depth += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None


def quiet_python_loggers() -> None:
    """Turn down the Python loggers of TensorFlow and tf2onnx that print on every conversion, and
    torch's pytree deprecation notes (torchao registers its enums when PT2E QAT imports it)."""
    if debugging():
        return
    for name in ("tensorflow", "tf2onnx", "absl", "h5py", "onnxruntime", "root", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


class CapturedText:
    """What a `native_stderr_captured()` block wrote to fd 2; `text` is filled when the block ends."""

    text: str = ""


@contextlib.contextmanager
def native_stderr_captured():
    """Redirect fd 2 to a temporary file for the duration and keep what was written there.

    Native libraries log to fd 2 directly (TFLite Micro's MicroPrintf names a missing kernel and
    prints its allocation report there), where no Python stream reaches; this is how edgekit reads
    those lines. Python's sys.stderr and the C stdio buffers are flushed on both sides of the block.
    """
    import ctypes
    import tempfile

    captured = CapturedText()
    with _lock, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            with contextlib.suppress(Exception):
                ctypes.CDLL(None).fflush(None)
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
