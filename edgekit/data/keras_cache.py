"""`data.source: keras`: mnist, fashion_mnist and cifar10 read from the Keras download cache.

edgekit never downloads data and never imports TensorFlow or Keras to read it: the files that
`keras.datasets.<name>.load_data()` leaves in `$KERAS_HOME/datasets` (default `~/.keras/datasets`)
are parsed directly. CIFAR-10 batches are Python pickles, so they are read with an unpickler that
only rebuilds numpy arrays and refuses every other global (a tampered cache cannot run code).

    >>> x_train, y_train, x_test, y_test, labels, description = load_keras("mnist")  # doctest: +SKIP
    >>> x_train.shape, labels[:3]  # doctest: +SKIP
    ((60000, 28, 28, 1), ['0', '1', '2'])
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from edgekit.errors import InputError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

LABELS = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}

FASHION_FILES = (
    "train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
)
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
# Keras 2 / tf_keras extract CIFAR-10 to `cifar-10-batches-py/`; Keras 3 to
# `cifar-10-batches-py-target/cifar-10-batches-py/`. Either is accepted, the first is the one named in errors.
CIFAR_DIRS = ("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py")


def cache_dir() -> Path:
    """`$KERAS_HOME/datasets` if KERAS_HOME is set, else `~/.keras/datasets` (where Keras caches downloads)."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home).expanduser() if home else Path.home() / ".keras") / "datasets"


def load_keras(name: str):
    """(x_train, y_train, x_test, y_test, labels, description) of a cached Keras dataset, NHWC uint8."""
    root = cache_dir()
    x_train, y_train, x_test, y_test, where = _READERS[name](root)
    return x_train, y_train, x_test, y_test, list(LABELS[name]), f"keras {name} (from the Keras cache {where})"


def _missing(name: str, root: Path, files: list[str], note: str = "") -> InputError:
    listing = "\n".join(f"  {root / f}" for f in files)
    return InputError(
        f"data.source keras, data.name {name}: edgekit does not download data, and the Keras download cache "
        f"lacks these file(s):\n{listing}\n{note}Copy the `datasets/` folder of a Keras cache from a machine where "
        f"`keras.datasets.{name}.load_data()` ran (or run it once here with network access) to {root}, "
        "or set KERAS_HOME to the folder that holds `datasets/`."
    )


def _unreadable(path: Path, name: str, exc: BaseException) -> InputError:
    return InputError(
        f"{path}: cannot read this file of the Keras {name} cache ({type(exc).__name__}: {exc}). It is probably "
        f"truncated or corrupt: delete it and run `keras.datasets.{name}.load_data()` again, or copy a good cache."
    )


def _mnist(root: Path):
    path = root / "mnist.npz"
    if not path.is_file():
        raise _missing("mnist", root, ["mnist.npz"])
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = [np.asarray(f[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
    except Exception as exc:  # noqa: BLE001 - any failure to parse is a bad file
        raise _unreadable(path, "mnist", exc) from None
    x_train, y_train, x_test, y_test = arrays
    return x_train[..., np.newaxis], y_train, x_test[..., np.newaxis], y_test, path


def _read_idx(path: Path, images: bool) -> np.ndarray:
    """An idx file (gzip): big-endian header of magic and dimensions, then uint8 data."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
        dims = 3 if images else 1
        header = np.frombuffer(raw, ">u4", count=1 + dims)
        if header[0] != 0x0800 + dims:
            raise ValueError(f"idx magic number {int(header[0]):#x}, expected {0x0800 + dims:#x}")
        shape = tuple(int(d) for d in header[1:])
        return np.frombuffer(raw, np.uint8, offset=4 * (1 + dims)).reshape(shape)
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, "fashion_mnist", exc) from None


def _fashion_mnist(root: Path):
    folder = root / "fashion-mnist"
    missing = [f"fashion-mnist/{f}" for f in FASHION_FILES if not (folder / f).is_file()]
    if missing:
        raise _missing("fashion_mnist", root, missing)
    y_train, x_train, y_test, x_test = (
        _read_idx(folder / f, images="images" in f) for f in FASHION_FILES
    )
    return x_train[..., np.newaxis], y_train, x_test[..., np.newaxis], y_test, folder


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (and plain dicts, lists, bytes) and refuses any other global.

    Python 2 pickles such as CIFAR-10's name `numpy.core.multiarray._reconstruct`; numpy 2 writes
    `numpy._core...`; protocol-2 pickles from Python 3 encode bytes with `_codecs.encode`.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): __import__("_codecs").encode,
    }

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': a dataset pickle only needs numpy arrays"
            ) from None


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = NumpyOnlyUnpickler(f, encoding="bytes").load()
        batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"])
        x = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path}: {exc}. This file is not a genuine CIFAR-10 batch (it may have been tampered with); "
            "delete the cache folder and run `keras.datasets.cifar10.load_data()` again, or copy a trusted cache."
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, "cifar10", exc) from None
    if len(labels) != len(x):
        raise _unreadable(path, "cifar10", ValueError(f"{len(x)} images but {len(labels)} labels"))
    return x, labels


def _cifar10(root: Path):
    folders = [root / d for d in CIFAR_DIRS]
    folder = next((d for d in folders if all((d / f).is_file() for f in CIFAR_FILES)), None)
    if folder is None:
        missing = [f"{CIFAR_DIRS[0]}/{f}" for f in CIFAR_FILES if not (folders[0] / f).is_file()]
        note = f"(Keras 3 keeps the same files in {root / CIFAR_DIRS[1]}/; either place works.)\n"
        raise _missing("cifar10", root, missing, note)
    train = [_cifar_batch(folder / f) for f in CIFAR_FILES[:-1]]
    x_test, y_test = _cifar_batch(folder / CIFAR_FILES[-1])
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, folder


_READERS = {"mnist": _mnist, "fashion_mnist": _fashion_mnist, "cifar10": _cifar10}
