"""User code a recipe names: `teacher.factory` (torch) and `custom_objects` (Keras custom layers).

A reference is `module` or `module:attribute`, with `module` a dotted name (`layers`, `pkg.layers`).
The module is looked up beside the model file first, then in the working directory (the console
script's sys.path has neither), then on PYTHONPATH / sys.path. `locate` finds the file without
importing anything (what `edgekit validate` checks in an instant); `import_module` imports it, which
runs the user's code, so callers only do so when the recipe trusts it. Framework-free on purpose:
both backends and the validation layer use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

from edgekit.errors import InputError

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
REFERENCE = re.compile(rf"^({_DOTTED})(?::({_DOTTED}))?$")
WHERE = "beside the model file, in the working directory, or on PYTHONPATH"


def split(reference: str) -> tuple[str, Optional[str]]:
    """("pkg.module", "attribute" or None) for "pkg.module[:attribute]"; ValueError when malformed."""
    match = REFERENCE.match(reference.strip())
    if not match:
        raise ValueError(f"{reference!r} is not a Python module name (`layers`, `pkg.layers`) optionally "
                         "followed by `:name` of a dict in it (`layers:CUSTOM_OBJECTS`)")
    return match.group(1), match.group(2)


def _search_path(beside: Path) -> list[str]:
    return [str(Path(beside).resolve()), str(Path.cwd())]


def locate(module: str, beside: Path) -> Optional[str]:
    """The file that `import module` would run (beside, then cwd, then sys.path), or None; nothing
    is imported (not even a parent package's `__init__.py`)."""
    parts = module.split(".")
    spec = PathFinder.find_spec(parts[0], _search_path(beside))
    if spec is None:
        try:  # an installed top-level module or package (finding it imports nothing)
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            spec = None
    for depth in range(1, len(parts)):
        if spec is None or not spec.submodule_search_locations:
            return None
        spec = PathFinder.find_spec(".".join(parts[:depth + 1]), list(spec.submodule_search_locations))
    return spec.origin if spec is not None else None


def import_module(module: str, beside: Path, key: str) -> ModuleType:
    """Import `module` (beside, then cwd, then sys.path): this runs the user's code. `key` names the
    recipe key in the message when it cannot be imported."""
    extra = _search_path(beside)
    sys.path[:0] = extra
    try:
        return importlib.import_module(module)
    except Exception as exc:
        raise InputError(f"{key}: cannot import module {module!r} ({type(exc).__name__}: {str(exc)[:300]}). "
                         f"Put the module {WHERE}.") from None
    finally:
        for entry in extra:
            sys.path.remove(entry)


def attribute(module: ModuleType, name: str, key: str) -> Any:
    """`module.name` (dotted names walk attributes); InputError naming `key` when it is missing."""
    value: Any = module
    for part in name.split("."):
        value = getattr(value, part, None)
        if value is None:
            raise InputError(f"{key}: module {module.__name__!r} has no {name!r}.")
    return value


def load(reference: str, beside: Path, key: str) -> tuple[ModuleType, Optional[Any]]:
    """Import the module of "module[:attribute]" and return it with the attribute (None without one)."""
    module_name, name = split(reference)
    module = import_module(module_name, beside, key)
    return module, (attribute(module, name, key) if name else None)


def digest_source(reference: Optional[str], beside: Path) -> Optional[str]:
    """The SHA-256 of the located module file, for cache keys: an edited layer module makes a new
    key (the files it imports in turn are not followed). None without a reference or a file."""
    if not reference:
        return None
    import hashlib

    try:
        origin = locate(split(reference)[0], beside)
        return hashlib.sha256(Path(origin).read_bytes()).hexdigest() if origin else None
    except (OSError, ValueError):
        return None


__all__ = ["REFERENCE", "WHERE", "attribute", "digest_source", "import_module", "load", "locate", "split"]
