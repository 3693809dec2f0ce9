"""`load_dataset`: read the recipe's `data:` section into a `Dataset`.

Each source in `SOURCES` only reads raw arrays (`RawData`); everything the sources share — layout,
`x * scale + offset`, label checks, the validation split, the calibration set, the test cap and
class names — happens once, in `prepare`, so every source gets the same checks and messages:

    >>> from edgekit.recipe import DataConfig
    >>> ds = load_dataset(DataConfig(source="digits", scale=0.0625), "classification", seed=0, resolve=Path)
    >>> ds.x_train.shape, ds.x_test.shape, ds.labels[:2]
    ((1293, 8, 8, 1), (360, 8, 8, 1), ['0', '1'])

Sources: `digits` (scikit-learn's bundled 8x8 digits), `npz` (named arrays in one file),
`image_folder` (`images.py`) and `keras` (the Keras download cache, `keras_cache.py`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from edgekit.errors import InputError
from edgekit.data.dataset import Dataset
from edgekit.data.ondisk import DiskArray, Scaled
from edgekit.data.splits import calibration_set, cap_test, hold_out_validation

SPLITS = ("x_train", "y_train", "x_test", "y_test")


class RawData(NamedTuple):
    """What a source reads: arrays as stored, the source's class names (or None) and a description.

    `layout` is the layout of the stored x arrays ("nchw" is transposed to channels-last);
    `where` prefixes error messages (which file, which recipe key).
    """

    x_train: np.ndarray  # or a DiskArray (image_folder)
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: Optional[list[str]]
    description: str
    layout: str = "nhwc"
    where: str = "data"


def load_dataset(config, task: str, seed: int, resolve: Callable[[str], Path],
                 cache_dir: Optional[Path] = None) -> Dataset:
    """Load `config` (a `DataConfig`) with its source and prepare it; raises `InputError` for bad data.

    `cache_dir` is where sources that stream from disk (image_folder) keep their decoded files;
    None uses `images.default_cache_dir()`."""
    if config.source != "npz" and config.layout != "nhwc":
        raise InputError(
            f"data.layout: {config.layout} applies to the arrays of an npz file; data.source {config.source} "
            "is already channels-last. Remove data.layout (edgekit transposes for each framework itself)."
        )
    raw = SOURCES[config.source](config, resolve, cache_dir)
    return prepare(raw, config, task, seed, resolve)


def _digits(config, resolve, cache_dir=None) -> RawData:
    """scikit-learn's 8x8 digits, values 0..16, with a fixed split: the test set never depends on the seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.images[..., np.newaxis]
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    description = "scikit-learn digits (8x8 grayscale, values 0..16, fixed stratified 80/20 train/test split)"
    return RawData(x_train, y_train, x_test, y_test, [str(i) for i in range(10)], description, where="data.source digits")


def _npz(config, resolve, cache_dir=None) -> RawData:
    """Four arrays of one .npz file, named by `data.keys`; one array may serve two keys."""
    path = resolve(config.path)
    where = f"data.path {path}"
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "no such file"
        raise InputError(f"{where}: {what}. Point data.path at an .npz file written with numpy.savez.")
    if not _has_numpy_header(path):
        raise InputError(
            f"{where}: not an .npz file (it is neither a zip archive of arrays nor a .npy array; pickled or "
            "other data is not read). Write it with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - whatever np.load raises, the file is not a readable npz
        raise InputError(
            f"{where}: not a readable .npz file ({type(exc).__name__}: {exc}). Write it with "
            "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(
            f"{where}: holds a single array (.npy), but data.source npz needs named arrays. Write an .npz with "
            "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
        )
    with archive:
        names = list(archive.files)
        loaded: dict[str, np.ndarray] = {}
        for key in SPLITS:
            name = getattr(config.keys, key)
            if name not in names:
                raise InputError(
                    f"{where}: has no array '{name}' (data.keys.{key}); the file holds: {', '.join(names) or 'nothing'}. "
                    f"Set data.keys.{key} to one of those names."
                )
            if name not in loaded:
                loaded[name] = _read_member(archive, name, key, where)
    x_train, y_train, x_test, y_test = (loaded[getattr(config.keys, k)] for k in SPLITS)
    return RawData(x_train, y_train, x_test, y_test, None, f"npz {path}", layout=config.layout, where=where)


def _has_numpy_header(path: Path) -> bool:
    """True when the file starts like an .npz (a zip archive) or an .npy array."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        return False
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06") or head == b"\x93NUMPY"


def _read_member(archive, name: str, key: str, where: str) -> np.ndarray:
    try:
        array = np.asarray(archive[name])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InputError(
            f"{where}: cannot read array '{name}' (data.keys.{key}): {exc}. Store plain numeric arrays "
            "(no object arrays) with numpy.savez."
        ) from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"{where}: array '{name}' (data.keys.{key}) has dtype {array.dtype}; it must be numeric.")
    return array


def _image_folder(config, resolve, cache_dir: Optional[Path] = None) -> RawData:
    from edgekit.data.images import load_image_folder

    root = resolve(config.path)
    return RawData(*load_image_folder(root, tuple(config.image_size), cache_dir), where=f"data.path {root}")


def _keras(config, resolve, cache_dir=None) -> RawData:
    from edgekit.data.keras_cache import load_keras

    return RawData(*load_keras(config.name), where=f"data.source keras, data.name {config.name}")


SOURCES: dict[str, Callable[..., RawData]] = {
    "digits": _digits,
    "npz": _npz,
    "image_folder": _image_folder,
    "keras": _keras,
}


# ---------------------------------------------------------------------------------------------
# What every source shares.


def prepare(raw: RawData, config, task: str, seed: int, resolve: Callable[[str], Path]) -> Dataset:
    """Checks, layout, preprocessing, targets, class names and splits: RawData -> Dataset."""
    where = raw.where
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        if len(x) == 0:
            raise InputError(f"{where}: the {split} split is empty; edgekit needs {split} samples.")
        if len(x) != len(y):
            raise InputError(
                f"{where}: x_{split} has {len(x)} samples but y_{split} has {len(y)}; each sample needs one target "
                f"(check data.keys.x_{split} and data.keys.y_{split})."
            )
    x_train, x_test = (_channels_last(x, raw.layout) for x in (raw.x_train, raw.x_test))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise InputError(
            f"{where}: train samples have shape {x_train.shape[1:]} but test samples {x_test.shape[1:]}; "
            "both splits must hold the same kind of input."
        )
    x_train = _preprocess(x_train, config.scale, config.offset, "train", where)
    x_test = _preprocess(x_test, config.scale, config.offset, "test", where)
    y_train, y_test = _targets(raw.y_train, task, "train", where), _targets(raw.y_test, task, "test", where)
    labels = _labels(config, raw, task, y_train, y_test, resolve)
    n_train = len(x_train)
    x_train, y_train, x_val, y_val = hold_out_validation(
        x_train, y_train, config.validation_split, seed, task == "classification", where
    )
    x_calib = calibration_set(x_train, config.calibration_samples, seed, where, held_out=n_train - len(x_train))
    x_test, y_test = cap_test(x_test, y_test, config.test_samples)
    return Dataset(
        x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test, x_calib=x_calib,
        task=task, labels=labels, description=raw.description,
        preprocessing={"scale": config.scale, "offset": config.offset, "layout": "nhwc", "stored_layout": raw.layout},
    )


def _channels_last(x: np.ndarray, layout: str) -> np.ndarray:
    """(n,) -> (n, 1); (n, features) unchanged; nchw (n, c, ...) -> (n, ..., c)."""
    if x.ndim == 1:
        return x[:, np.newaxis]
    if layout == "nchw" and x.ndim >= 3:
        return np.moveaxis(x, 1, -1)
    return x


def _preprocess(x: np.ndarray, scale: float, offset: float, split: str, where: str) -> np.ndarray:
    """`x * scale + offset` as a fresh C-contiguous float32 array; NaN or inf anywhere is an error.

    A DiskArray (decoded pixels, uint8) gets the same arithmetic as a lazy transform (`Scaled`); its
    values are finite, so only the extremes of its dtype are checked for overflow."""
    for key, value in (("scale", scale), ("offset", offset)):
        if not np.isfinite(value):
            raise InputError(f"data.{key} is {value}; it must be a finite number (inputs become x * scale + offset).")
    if isinstance(x, DiskArray):
        scaled = Scaled(scale, offset)
        limits = np.iinfo(x.dtype) if np.issubdtype(x.dtype, np.integer) else np.finfo(x.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(scaled(np.array([limits.min, limits.max], x.dtype))).all()
        if not finite:
            raise InputError(f"{where}: x_{split} overflows float32 after x * {scale} + {offset}; check data.scale "
                             "and data.offset.")
        return x.map(scaled)
    out = np.array(x, dtype=np.float32, order="C")
    out *= np.float32(scale)
    out += np.float32(offset)
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        cause = "" if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all() else (
            f" after x * {scale} + {offset} (the values overflow float32; check data.scale and data.offset)"
        )
        raise InputError(
            f"{where}: x_{split} holds {bad} NaN or infinite value(s){cause} out of {out.size}. "
            "Drop or fill those samples before edgekit reads them."
        )
    return out


def _targets(y: np.ndarray, task: str, split: str, where: str) -> np.ndarray:
    """Classification: int64 class ids (integral floats and one-hot rows accepted). Regression: float32."""
    y = np.asarray(y)
    if task == "regression":
        out = np.array(y, dtype=np.float32)
        if not np.isfinite(out).all():
            raise InputError(f"{where}: y_{split} holds {int(np.count_nonzero(~np.isfinite(out)))} NaN or infinite targets.")
        return out
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise InputError(
                f"{where}: y_{split} has shape {y.shape} but is not one-hot (one 1 per row, zeros elsewhere). "
                "Store integer class ids (n,) or one-hot rows, or set task: regression for continuous targets."
            )
        y = y.argmax(axis=1)
    elif y.ndim != 1:
        raise InputError(f"{where}: y_{split} has shape {y.shape}; classification needs class ids of shape (n,).")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not (y == np.round(y)).all():
            raise InputError(
                f"{where}: y_{split} holds non-integer values (e.g. {y[y != np.round(y)][:1].tolist() or 'NaN'}); "
                "classification needs integer class ids. For continuous targets set task: regression."
            )
    out = y.astype(np.int64)
    if out.size and out.min() < 0:
        raise InputError(
            f"{where}: y_{split} holds negative class ids (e.g. {int(out.min())}); class ids must be 0, 1, 2, ... "
            "Remap them (and list the class names in data.labels)."
        )
    return out


def _labels(config, raw: RawData, task: str, y_train: np.ndarray, y_test: np.ndarray, resolve) -> Optional[list[str]]:
    """data.labels (a list, or a labels.txt path) overrides the source's names; too few names is an error."""
    if task == "regression":
        if config.labels is not None:
            raise InputError("data.labels names classes, but task is regression. Remove data.labels.")
        return None
    if isinstance(config.labels, str):
        path = resolve(config.labels)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                f"data.labels {path}: cannot read it ({type(exc).__name__}). Give a text file with one class name per "
                "line, or a list of names: labels: [cat, dog]."
            ) from None
        labels = [line.strip() for line in text.splitlines() if line.strip()]
        origin = f"data.labels {path}"
    elif config.labels is not None:
        labels, origin = list(config.labels), "data.labels"
    else:
        return list(raw.labels) if raw.labels is not None else None
    classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    if len(labels) < classes:
        raise InputError(
            f"{origin}: {len(labels)} class name(s) but the data has class ids up to {classes - 1} ({classes} classes). "
            f"List one name per class id, in order."
        )
    return labels
