"""The one place that imports torch for the torch backend (runtimes never need it)."""

from __future__ import annotations

from edgekit.quiet import native_stderr_silenced, quiet_python_loggers

with native_stderr_silenced():
    import torch  # noqa: E402
    from torch import nn  # noqa: E402

quiet_python_loggers()

__all__ = ["torch", "nn"]
