"""`data.source: image_folder`: one sub-folder of images per class, read with Pillow.

    photos/                      photos/
      cat/ 001.png ...    or       train/ cat/ ... dog/ ...
      dog/ 001.jpg ...             test/  cat/ ... dog/ ...

Class names are the sorted sub-folder names (in the second form, the union over train/ and test/).
Without train/ and test/ the images are split 80/20, stratified by class, with a fixed seed, so the
test set never depends on the recipe seed. Images are resized to `image_size: [h, w]` (bilinear)
and kept as 0..255 floats; `scale`/`offset` are applied later with every other source. The channel
count follows the data: one channel when every image is grayscale, else all are converted to RGB.

The folder is decoded once, one image at a time, into an .npy file per split (uint8 pixels) in a
cache directory named by the folder's fingerprint (`fingerprint`); later loads of the unchanged
folder reuse the files. The splits come back as `DiskArray`s, read a batch at a time by training,
prediction and evaluation, so memory does not grow with the number of images.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import numpy as np

from edgekit.errors import InputError
from edgekit.data.ondisk import DiskArray, write_rows
from edgekit.data.splits import rng, split_indices

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
# Grayscale modes (LA is gray with alpha, which is dropped); anything else is converted to RGB.
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
TEST_FRACTION = 0.2
#: bumped when the cached files' content changes meaning, so older caches are not reused
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """Where decoded image folders are kept without a stage cache root: $EDGEKIT_CACHE_DIR/data, else
    $XDG_CACHE_HOME/edgekit/data, else ~/.cache/edgekit/data (the stage cache's root, plus data/)."""
    if os.environ.get("EDGEKIT_CACHE_DIR"):
        return Path(os.environ["EDGEKIT_CACHE_DIR"]).expanduser() / "data"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit" / "data"


def load_image_folder(root: Path, image_size: tuple[int, int], cache_dir: Optional[Path] = None):
    """(x_train, y_train, x_test, y_test, class names, description); x is a (n, h, w, 1 or 3)
    `DiskArray` of 0..255 pixels (uint8 on disk, float32 once `scale`/`offset` apply) decoded into
    `cache_dir` (default `default_cache_dir()`)."""
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise InputError(
            f"data.path {root} {what}. data.source image_folder needs a folder with one sub-folder of images per "
            "class (optionally inside train/ and test/ folders)."
        )
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, test = _class_files(root / "train"), _class_files(root / "test")
        classes = sorted(set(train) | set(test))
        files_train, y_train = _flatten(train, classes)
        files_test, y_test = _flatten(test, classes)
        for split, files in (("train", files_train), ("test", files_test)):
            if not files:
                raise _no_images(root / split)
        how = "train/ and test/ folders"
    else:
        per_class = _class_files(root)
        classes = sorted(per_class)
        files, labels = _flatten(per_class, classes)
        if not files:
            raise _no_images(root)
        keep, held = split_indices(labels, TEST_FRACTION, rng(0, "image_folder test split"), stratify=True)
        files_train, y_train = [files[i] for i in keep], labels[keep]
        files_test, y_test = [files[i] for i in held], labels[held]
        how = "fixed stratified 80/20 split"
    x_train, x_test = _decoded(root, files_train, files_test, image_size, Path(cache_dir or default_cache_dir()))
    mode = "L" if x_train.shape[-1] == 1 else "RGB"
    h, w = image_size
    description = (
        f"image folder {root} ({len(files_train) + len(files_test)} images, {len(classes)} classes, "
        f"{h}x{w} {'grayscale' if mode == 'L' else 'RGB'}, {how})"
    )
    return x_train, y_train, x_test, y_test, classes, description


def _no_images(folder: Path) -> InputError:
    loose = any(f.is_file() and f.suffix.lower() in EXTENSIONS for f in folder.iterdir())
    hint = " The images lie directly in that folder: move them into one sub-folder per class." if loose else ""
    return InputError(
        f"data.path: no images found in the class sub-folders of {folder}. data.source image_folder expects one "
        f"sub-folder per class holding image files ({', '.join(sorted(EXTENSIONS))}), e.g. "
        f"{folder / 'cat' / '001.png'}.{hint}"
    )


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> sorted image files, for every visible sub-folder of `folder`."""
    return {
        d.name: sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS and not f.name.startswith("."))
        for d in sorted(folder.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }


def _flatten(per_class: dict[str, list[Path]], classes: list[str]) -> tuple[list[Path], np.ndarray]:
    files = [f for name in classes for f in per_class.get(name, [])]
    labels = [i for i, name in enumerate(classes) for _ in per_class.get(name, [])]
    return files, np.asarray(labels, dtype=np.int64)


def _unreadable(path: Path, exc: BaseException) -> InputError:
    return InputError(
        f"{path}: Pillow cannot read this image ({type(exc).__name__}: {exc}). Delete or re-save it, or move it out "
        "of the data.path folder."
    )


def _mode(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.mode
    except Exception as exc:  # noqa: BLE001 - anything Pillow raises means an unreadable file
        raise _unreadable(path, exc) from None


def fingerprint(root: Path, files: list[Path], image_size: tuple[int, int]) -> str:
    """sha256 over each image's path relative to `root`, size and mtime, in split order, and the
    image size: any added, removed, moved or rewritten image, or a new size, decodes the folder
    again. (The channel count follows from the files, so it is covered by them.)"""
    digest = hashlib.sha256(f"image_folder v{CACHE_FORMAT} {tuple(image_size)}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"\n{path.relative_to(root).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _decoded(root: Path, files_train: list[Path], files_test: list[Path], image_size: tuple[int, int],
             cache_dir: Path) -> tuple[DiskArray, DiskArray]:
    """The train and test images as DiskArrays, decoding them into `cache_dir` unless already there."""
    key = fingerprint(root, files_train + files_test, image_size)
    # the counts mark where the train files end, so the same files split differently decode apart
    folder = cache_dir / f"image_folder-{key}-{len(files_train)}-{len(files_test)}"
    train, test = folder / "train.npy", folder / "test.npy"
    if not (train.is_file() and test.is_file()):
        mode = "L" if all(_mode(f) in GRAY_MODES for f in files_train + files_test) else "RGB"
        h, w = image_size
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for path, files in ((train, files_train), (test, files_test)):
                write_rows(path, _pixels(files, image_size, mode), len(files), (h, w, 1 if mode == "L" else 3), np.uint8)
        except OSError as exc:
            raise InputError(f"data.path {root}: cannot write the decoded images to {folder} ({exc}). Free some "
                             "disk space, or set $EDGEKIT_CACHE_DIR (or --cache-dir) to a writable folder.") from None
    return DiskArray(train), DiskArray(test)


def _pixels(files: list[Path], image_size: tuple[int, int], mode: str):
    """Each image resized to `image_size` (bilinear) in `mode`, as (h, w, channels) uint8, one at a time."""
    from PIL import Image

    h, w = image_size
    for path in files:
        try:
            with Image.open(path) as image:
                pixels = image.convert(mode).resize((w, h), Image.Resampling.BILINEAR)
                row = np.asarray(pixels, dtype=np.uint8).reshape(h, w, -1)
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, exc) from None
        yield row
