"""Arrays that stay on disk: `write_rows` writes an .npy file row by row, `DiskArray` reads it back.

A split too large for memory (an image folder of tens of thousands of images) is decoded once
into an .npy file and then read a batch at a time:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> write_rows(path, (np.full((2, 2), i, np.uint8) for i in range(5)), 5, (2, 2), np.uint8)
    >>> x = DiskArray(path).map(Scaled(0.5, 1.0))
    >>> x.shape, x.dtype, x[[4, 0]][:, 0, 0].tolist()
    ((5, 2, 2), dtype('float32'), [3.0, 1.0])
    >>> x.take([1, 3])[1:].shape
    (1, 2, 2)

Rows are written with plain file writes and read with `os.pread`, never through `np.memmap`:
file pages a process maps and touches count in its resident memory, pages it only reads through
the page cache do not, so a training loop over a DiskArray keeps a flat RSS however large the file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

Index = Union[int, slice, Sequence[int], np.ndarray]


def write_rows(path, rows: Iterable[np.ndarray], count: int, row_shape: tuple[int, ...], dtype) -> None:
    """Write `count` rows of `row_shape` and `dtype` as one .npy file at `path`, atomically.

    The header comes first, then each row's bytes as it arrives, so only one row is in memory at a
    time; the file is written under a temporary name and renamed, so a reader never sees half of it
    (and a crash leaves no file that looks complete). Raises ValueError when the rows run short or long.
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (int(count), *(int(d) for d in row_shape))}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            np.lib.format.write_array_header_2_0(f, header)
            written = 0
            for row in rows:
                row = np.ascontiguousarray(row, dtype=dtype)
                if row.shape != tuple(row_shape) or written >= count:
                    raise ValueError(f"{path}: row {written} has shape {row.shape}, expected {tuple(row_shape)} "
                                     f"and at most {count} rows")
                f.write(row.tobytes())
                written += 1
            if written != count:
                raise ValueError(f"{path}: {written} rows written, expected {count}")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


class Scaled:
    """The recipe's preprocessing `x * scale + offset` in float32, as `sources._preprocess` computes it."""

    def __init__(self, scale: float, offset: float):
        self.scale, self.offset = np.float32(scale), np.float32(offset)
        self.label = f"scaled({float(scale)!r}, {float(offset)!r})"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.array(batch, dtype=np.float32, order="C")
        out *= self.scale
        out += self.offset
        return out


class DiskArray:
    """A read-only array of the rows of an .npy file, optionally a subset of them and transformed.

    Indexing with an int, a slice or an integer index array reads just those rows (`os.pread`) and
    returns a fresh ndarray with the transforms applied; `take` and `map` return new DiskArrays that
    share the file, so splits and preprocessing cost no memory. `np.asarray` reads every row:
    use it only for small subsets (a calibration sample).
    """

    def __init__(self, path, rows: Optional[np.ndarray] = None,
                 transforms: tuple[Callable[[np.ndarray], np.ndarray], ...] = ()):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"{self.path}: .npy format version {version} is not read here (1.0 or 2.0)")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self._offset = f.tell()
        if fortran:
            raise ValueError(f"{self.path}: a Fortran-ordered array cannot be read by rows")
        self._stored_rows, self._row_shape, self._stored_dtype = int(shape[0]), tuple(shape[1:]), dtype
        self._row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * dtype.itemsize
        self._rows = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        self._transforms = tuple(transforms)
        probe = self._apply(np.zeros((0, *self._row_shape), dtype))
        self.shape = (len(self), *probe.shape[1:])
        self.dtype = probe.dtype
        self._fd: Optional[int] = None

    # -- array-like surface -----------------------------------------------------------------
    def __len__(self) -> int:
        return self._stored_rows if self._rows is None else len(self._rows)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __getitem__(self, key: Index) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            position = int(key) + len(self) if key < 0 else int(key)
            if not 0 <= position < len(self):
                raise IndexError(f"index {key} is out of bounds for {len(self)} rows")
            return self._read(np.array([position]))[0]
        if isinstance(key, slice):
            return self._read(np.arange(len(self))[key])
        positions = np.asarray(key)
        if positions.dtype == bool or not np.issubdtype(positions.dtype, np.integer) or positions.ndim != 1:
            raise TypeError(f"DiskArray takes an int, a slice or a 1-D integer index array, not {key!r}")
        positions = np.where(positions < 0, positions + len(self), positions)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"an index is out of bounds for {len(self)} rows")
        return self._read(positions)

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self):
        for position in range(len(self)):
            yield self[position]

    def __repr__(self) -> str:
        return f"DiskArray({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    # -- views ------------------------------------------------------------------------------
    def take(self, indices) -> "DiskArray":
        """The rows at `indices` (positions in this array, in that order), without reading them."""
        positions = np.asarray(indices, dtype=np.int64).reshape(-1)
        rows = positions if self._rows is None else self._rows[positions]
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"an index is out of bounds for {len(self)} rows")
        return DiskArray(self.path, rows, self._transforms)

    def map(self, transform: Callable[[np.ndarray], np.ndarray]) -> "DiskArray":
        """The same rows with `transform(batch)` applied after reading; it must work on any batch of
        rows independently (elementwise, per row), and should carry a `label` for `digest`."""
        return DiskArray(self.path, self._rows, (*self._transforms, transform))

    def digest(self) -> str:
        """sha256 naming this array's content: the file, the rows and the transforms.

        The file counts by its folder and file name and its size, not its bytes or times: files
        are written once (`write_rows`) under names that already key their content (an image
        folder's fingerprint), so decoding the same folder again gives the same digest, and the
        stage cache keys built from it keep hitting."""
        digest = hashlib.sha256(f"{self.path.parent.name}/{self.path.name}:{self.path.stat().st_size}".encode())
        digest.update(b"all" if self._rows is None else self._rows.tobytes())
        for transform in self._transforms:
            digest.update(getattr(transform, "label", repr(transform)).encode())
        return digest.hexdigest()

    # -- reading ----------------------------------------------------------------------------
    def _apply(self, batch: np.ndarray) -> np.ndarray:
        for transform in self._transforms:
            batch = transform(batch)
        return batch

    def _read(self, positions: np.ndarray) -> np.ndarray:
        rows = positions.astype(np.int64) if self._rows is None else self._rows[positions]
        out = np.empty((len(rows), *self._row_shape), self._stored_dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8) if len(rows) else None
        fd = self._descriptor()
        start = 0
        while start < len(rows):  # one pread per run of consecutive rows
            stop = start + 1
            while stop < len(rows) and rows[stop] == rows[stop - 1] + 1:
                stop += 1
            want = (stop - start) * self._row_bytes
            data = os.pread(fd, want, self._offset + int(rows[start]) * self._row_bytes)
            if len(data) != want:
                raise OSError(f"{self.path}: short read ({len(data)} of {want} bytes); the file is truncated")
            flat[start:stop] = np.frombuffer(data, np.uint8).reshape(stop - start, self._row_bytes)
            start = stop
        return self._apply(out)

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None


def pick(x, indices):
    """`x[indices]` for a numpy array; a view (`take`) for a DiskArray, so nothing is read."""
    return x.take(indices) if isinstance(x, DiskArray) else x[indices]


def on_disk(x) -> bool:
    """True when `x` is a DiskArray: consumers then read it in batches instead of whole."""
    return isinstance(x, DiskArray)
