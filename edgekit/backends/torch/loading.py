"""Loading torch teachers without running code from the file.

Three kinds of file are accepted, told apart by their contents (torch files are zip archives):
- a `torch.export` program (`torch.export.save`, usually `.pt2`): `torch.export.load(...).module()`;
- TorchScript (`torch.jit.save`, `.pt` / `.ts`; the archive has `code/` entries): `torch.jit.load`;
- a `state_dict` (`torch.save(model.state_dict())`, `.pt` / `.pth`) with `teacher.factory:
  "package.module:function"`, which builds the module; the weights are read with
  `weights_only=True` and loaded strictly. The factory is the only route that imports user code,
  and only code the recipe names.
A pickled `nn.Module` (`torch.save(model)`) is refused: unpickling it runs arbitrary code from the file.

Exported programs are specialised to the batch size they were exported with unless a dynamic batch
dimension was declared; the module's graph records that size in its input's shape, which
`train.static_batch` reads so `train.predict` feeds batches of exactly that size.
"""

from __future__ import annotations

import io
import logging
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Optional

from edgekit import usercode
from edgekit.errors import InputError
from edgekit.quiet import native_stderr_silenced, quiet_python_loggers
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.train import set_mode

SUFFIXES = (".pt2", ".pt", ".pth", ".ts")

SAVE_INSTEAD = (
    "Save the model in a form that holds no Python code instead: "
    "torch.export.save(torch.export.export(model, (example,)), \"model.pt2\"), or "
    "torch.jit.save(torch.jit.script(model), \"model.pt\"), or torch.save(model.state_dict(), \"model.pth\") "
    "and set teacher.factory: \"pkg.module:build_model\" (a function returning the nn.Module)."
)


def _members(path: Path) -> Optional[list[str]]:
    """The zip archive's member names, or None when the file is not a zip archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _kind(path: Path, members: Optional[list[str]]) -> str:
    """'export', 'script' or 'pickle' (torch.save output, including pre-1.6 non-zip files)."""
    if members is None:
        return "export" if path.suffix.lower() == ".pt2" else "pickle"
    names = [m.split("/", 1)[-1] for m in members]
    if "archive_format" in names or any(n.startswith("models/") and n.endswith(".json") for n in names):
        return "export"
    if "constants.pkl" in names or any(n.startswith("code/") for n in names):
        return "script"
    return "pickle"


def _corrupt(path: Path, what: str, exc: Exception, key: str = "teacher.path") -> InputError:
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:  # drop torch's advice to re-load with weights_only=False
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    return InputError(f"{path}: cannot read the {what} ({key}): {first}. "
                      "Is the file complete and saved by torch?")


def _not_torch(path: Path, key: str) -> InputError:
    return InputError(f"{path}: not a file written by torch ({key}): it is neither a zip archive (what "
                      "torch.export.save, torch.jit.save and torch.save write) nor a legacy torch pickle. "
                      "Is the file complete, and is it the model you meant?")


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def _check_unzippable(path: Path, key: str) -> None:
    """A file that is not a readable zip archive: a legacy (pre-1.6) torch.save pickle (protocol 2+
    starts with 0x80) is fine; a damaged zip or anything else was not written (completely) by torch."""
    head = _head(path)
    if head == b"PK\x03\x04":
        raise InputError(f"{path}: a damaged or truncated zip archive ({key}): torch files are zip archives, and "
                         "this one cannot be read to the end. Copy or save the model again.")
    if head[:1] != b"\x80":
        raise _not_torch(path, key)


def load_export(path: Path, key: str = "teacher.path"):
    export_log = logging.getLogger("torch.export")  # logs a traceback before raising on a bad archive
    level = export_log.level
    export_log.setLevel(logging.CRITICAL)
    try:
        with native_stderr_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.load(io.BytesIO(path.read_bytes()))
            module = program.module()
    except Exception as exc:
        raise _corrupt(path, "torch.export program", exc, key) from None
    finally:
        export_log.setLevel(level)
        quiet_python_loggers()
    return module


def load_script(path: Path, key: str = "teacher.path"):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the TorchScript loader
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise _corrupt(path, "TorchScript model", exc, key) from None


def import_factory(factory: str, beside: Path):
    """Import "package.module:function", looking beside the weights file and in the working
    directory first (the console script's sys.path has neither), then on PYTHONPATH."""
    module_name, sep, function_name = factory.partition(":")
    if not sep or not module_name.strip() or not function_name.strip():
        raise InputError(f"teacher.factory: {factory!r} is not \"package.module:function\" "
                         "(a module importable from the working directory and a function in it that "
                         "returns the nn.Module, called with no arguments).")
    module = usercode.import_module(module_name.strip(), beside, "teacher.factory")
    function = usercode.attribute(module, function_name.strip(), "teacher.factory")
    if not callable(function):
        raise InputError(f"teacher.factory: {factory!r} is not callable.")
    return function


def _state_dict_of(obj):
    """The state_dict in `obj`: itself, or a checkpoint's `state_dict` / `model_state_dict` / `model`."""
    def is_state(d):
        return isinstance(d, dict) and d and all(isinstance(v, torch.Tensor) for v in d.values())

    if is_state(obj):
        return obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if is_state(obj.get(key)):
                return obj[key]
    return None


def _load_state_dict(path: Path, factory: Optional[str], key: str = "teacher.path"):
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # a class to import: a pickled object, not weights
            raise InputError(
                f"{path}: the file is a pickled Python object (torch.save(model)), not weights. Loading it "
                "would execute arbitrary code from the file, so edgekit refuses it. " + SAVE_INSTEAD) from None
        raise _corrupt(path, "torch file", exc, key) from None
    except Exception as exc:
        raise _corrupt(path, "torch file", exc, key) from None
    state = _state_dict_of(obj)
    if state is None:
        raise InputError(f"{path}: the file holds a {type(obj).__name__}, not a model or a state_dict "
                         "(a dict of tensors). " + SAVE_INSTEAD)
    if not factory:
        raise InputError(f"{path}: the file is a state_dict (weights only); set teacher.factory: "
                         "\"pkg.module:build_model\" to a function that builds the nn.Module, or save a "
                         "torch.export (.pt2) or TorchScript (.pt) model instead.")
    try:
        module = import_factory(factory, path.parent)()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"teacher.factory: {factory!r} raised {type(exc).__name__}: {str(exc)[:300]}") from None
    if not isinstance(module, nn.Module):
        raise InputError(f"teacher.factory: {factory!r} returned a {type(module).__name__}, not a torch nn.Module.")
    try:
        module.load_state_dict(state, strict=True)
    except Exception as exc:
        raise InputError(f"{path}: the state_dict does not fit the module built by teacher.factory {factory!r}: "
                         f"{' '.join(str(exc).split())[:600]}") from None
    return module


def load(path: Path, factory: Optional[str] = None, key: str = "teacher.path") -> nn.Module:
    """The model at `path` as an `nn.Module` in eval mode (see the module docstring for formats).

    `key` is the recipe key that named the file (e.g. "stages[0].distill.student.path"), for messages."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: the model file does not exist ({key}). Check the path, "
                         "which is read relative to the recipe file, then to the working directory.")
    if path.is_dir():
        raise InputError(f"{path}: a torch model ({key}) is a file: .pt2 (torch.export), "
                         ".pt / .ts (TorchScript) or .pt / .pth (state_dict with teacher.factory).")
    if path.suffix.lower() not in SUFFIXES:
        raise InputError(f"{path}: not a torch model file ({key}). Torch models are "
                         f"{', '.join(SUFFIXES)} files.")
    members = _members(path)
    if members is None:
        _check_unzippable(path, key)
    kind = _kind(path, members)
    if kind == "export":
        model = load_export(path, key)
    elif kind == "script":
        model = load_script(path, key)
    else:
        model = _load_state_dict(path, factory, key)
    set_mode(model, False)
    return model

__all__ = ["SUFFIXES", "import_factory", "load", "load_export", "load_script"]
