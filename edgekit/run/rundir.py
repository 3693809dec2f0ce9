"""Atomic run directories: a run is built beside its target and moved into place at the end.

A failed, crashed or interrupted (Ctrl-C) run removes its temporary directory and leaves the
previous `runs/<name>/` exactly as it was; a finished run replaces it with two renames.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgekit.errors import InputError
from edgekit.interrupts import raise_if_signalled


def check_output_is_safe(target: Path, protected: list[Path]) -> None:
    """Refuse an output directory whose replacement would destroy something that is not a run:
    the filesystem root, the home directory itself, the working directory, or any directory that
    holds the recipe, the teacher or the data (a run directory is replaced as a whole)."""
    target = Path(target).expanduser().absolute().resolve()
    forbidden = {Path("/"), Path.home().resolve(), Path.cwd().resolve()}
    if target in forbidden:
        raise InputError(f"{target}: refusing to use this directory as the run output: a finished run replaces "
                         "its output directory as a whole. Use a dedicated directory, e.g. runs/<name>.")
    for path in protected:
        path = Path(path).expanduser().absolute().resolve()
        if path == target or target in path.parents:
            raise InputError(f"{target}: the output directory holds {path}, which a finished run would replace. "
                             "Choose an output directory of its own (--output or `output:`).")


def _prepare_parent(target: Path) -> Path:
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{parent}: cannot create the output directory ({exc.strerror}). "
                         "Choose another with --output or `output:` in the recipe.") from None
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: the output path exists and is not a directory. Choose another with --output.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{parent}: the output directory is not writable. Choose another with --output "
                         "or `output:` in the recipe.")
    return parent


@contextlib.contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `target`; on success it becomes `target`."""
    target = Path(target).absolute()
    parent = _prepare_parent(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    staging.chmod(_directory_mode())  # mkdtemp makes 0700; a run directory is as readable as any other
    try:
        yield staging
        raise_if_signalled()  # a signal that something swallowed still keeps the previous run
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace(staging, target)


def _directory_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _replace(staging: Path, target: Path) -> None:
    previous = None
    if target.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        previous.rmdir()
        target.rename(previous)
    try:
        staging.rename(target)
    except BaseException:
        if previous is not None:
            previous.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
