"""The stage cache: training results reused across runs of the same recipe.

Every training step of a run (teacher training, distill, prune, cluster, QAT) gets a key: a sha256
of the key of its input (the teacher file's bytes, or the build and train settings), its own config,
the data's fingerprint, the seed and the edgekit version. A run whose steps all hit also reuses its
exported files and the teacher's outputs, and never imports the training framework; changing a
later stage's config re-runs only from that stage.

Location: `--cache-dir DIR`, else $EDGEKIT_CACHE_DIR, else $XDG_CACHE_HOME/edgekit, else
~/.cache/edgekit. `--no-cache` turns it off. Entries are written to a temporary directory and
renamed into place, so an interrupted run never leaves a half-written entry. Concurrent runs (the
trials of `edgekit search`, on one machine) share one directory safely: a run claims a step's key
(`StageCache.claim`, a `filelock` lock file in `locks/`) while it trains it, so the others
wait for it and reuse its entry, and two writers of one entry keep the first. Entries hold no
pickles: models are saved by their backend in formats that load without running code from the
file (HDF5, torch.export programs, TorchScript, state_dicts read with weights_only), metadata is
JSON and arrays are .npy read without allow_pickle. An entry that cannot be read that way is
discarded with a warning and its step runs again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from edgekit import __version__


def default_cache_dir() -> Path:
    if os.environ.get("EDGEKIT_CACHE_DIR"):
        return Path(os.environ["EDGEKIT_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgekit"


def file_digest(path: Path) -> str:
    """sha256 of a file, or of every file below a directory (names and bytes)."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def make_key(*parts: Any) -> str:
    """A stable key for JSON-able parts, always including the edgekit version."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class StageCache:
    """A directory of entries, each `<key>/` with `meta.json` and whatever the writer put there."""

    def __init__(self, root: Optional[Path] = None, enabled: bool = True):
        self.root = Path(root) if root else default_cache_dir()
        self.enabled = enabled

    def entry(self, key: str) -> Optional[Path]:
        """The entry's directory when it exists and is complete, else None."""
        if not self.enabled:
            return None
        path = self.root / key
        return path if (path / "meta.json").is_file() else None

    def meta(self, key: str) -> Optional[dict]:
        path = self.entry(key)
        return json.loads((path / "meta.json").read_text()) if path else None

    @contextlib.contextmanager
    def claim(self, key: Optional[str]) -> Iterator[None]:
        """Hold `key` while its step is looked up, run and stored: a concurrent run that claims the
        same key waits, then finds the entry (the lock is released if the process dies)."""
        if not key or not self.enabled:
            yield
            return
        from filelock import FileLock

        locks = self.root / "locks"  # lock files stay (removing one would race its waiters); no entry is named so
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"{key}.lock")):
            yield

    def discard(self, key: str) -> None:
        """Remove the entry for `key` (one that could not be read), so a new one can take its place."""
        path = self.root / key
        if self.enabled and path.is_dir() and path.parent == self.root:
            shutil.rmtree(path, ignore_errors=True)

    def store(self, key: str, meta: dict, writer: Optional[Callable[[Path], None]] = None) -> Optional[str]:
        """Write an entry atomically; returns a warning instead of failing the run when it cannot."""
        if not self.enabled or self.entry(key):
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=self.root))
            try:
                if writer is not None:
                    writer(staging)
                (staging / "meta.json").write_text(json.dumps(meta, default=str, indent=1))
                try:
                    staging.rename(self.root / key)
                except OSError:
                    if not self.entry(key):
                        raise
                    shutil.rmtree(staging, ignore_errors=True)  # a concurrent writer stored it first
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a full disk or a model with no safe saved form must not fail the run
            return f"stage cache: could not store an entry in {self.root} ({type(exc).__name__}: {str(exc)[:200]})"
        return None


DISABLED = StageCache(enabled=False)
