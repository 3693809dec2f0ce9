"""Framework backends, looked up by name through `get_backend` so no code outside this package
needs to know which framework it is driving."""

from __future__ import annotations

import importlib

from edgekit.backends.base import Backend

# framework name -> module that defines `BACKEND`; imported only when that framework is used.
_BACKEND_MODULES = {
    "keras": "edgekit.backends.keras",
    "torch": "edgekit.backends.torch",
}


def available_frameworks() -> tuple[str, ...]:
    return tuple(_BACKEND_MODULES)


def get_backend(framework: str) -> Backend:
    """The backend for `framework` ("keras"), importing its heavy dependencies on first use."""
    module = importlib.import_module(_BACKEND_MODULES[framework])
    return module.BACKEND
