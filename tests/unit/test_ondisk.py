"""edgekit.data.ondisk and the image-folder cache: DiskArray reads what write_rows wrote, row by
row, and an image folder streams the same samples the in-memory decode gave (no TF/torch)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.data.images import EXTENSIONS, TEST_FRACTION, load_image_folder
from edgekit.data.ondisk import DiskArray, Scaled, on_disk, pick, write_rows
from edgekit.data.sources import load_dataset
from edgekit.data.splits import rng, split_indices
from edgekit.layouts import to_layout
from edgekit.recipe import DataConfig


def written(tmp_path, array, name="x.npy") -> Path:
    path = tmp_path / name
    write_rows(path, iter(array), len(array), array.shape[1:], array.dtype)
    return path


@pytest.fixture
def stored(tmp_path):
    array = np.arange(7 * 3 * 2 * 2, dtype=np.uint8).reshape(7, 3, 2, 2)
    return array, DiskArray(written(tmp_path, array))


def test_written_file_is_a_plain_npy(tmp_path, stored):
    array, x = stored
    assert np.array_equal(np.load(x.path), array)
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temporary left behind


def test_len_shape_dtype_ndim(stored):
    array, x = stored
    assert len(x) == 7 and x.shape == array.shape and x.dtype == np.uint8 and x.ndim == 4 and x.size == array.size


def test_indexing_by_int_slice_and_index_array(stored):
    array, x = stored
    assert np.array_equal(x[3], array[3]) and np.array_equal(x[-1], array[-1])
    for key in (slice(None), slice(2, 5), slice(None, None, -2), slice(10, 20)):
        assert np.array_equal(x[key], array[key])
    for key in ([6, 0, 1, 2, 5], np.array([4, 4, -7]), np.array([], np.int64)):
        assert np.array_equal(x[key], array[key])
    out = x[1:3]
    out[...] = 0  # a fresh array, not a view of anything shared
    assert np.array_equal(x[1:3], array[1:3])
    with pytest.raises(IndexError):
        x[7]
    with pytest.raises(IndexError):
        x[[0, 9]]
    with pytest.raises(TypeError):
        x[np.ones(7, bool)]


def test_take_is_a_view_of_a_subset(stored):
    array, x = stored
    subset = x.take([5, 1, 3])
    assert on_disk(subset) and len(subset) == 3
    assert np.array_equal(subset[:], array[[5, 1, 3]])
    assert np.array_equal(subset.take([2, 0])[:], array[[3, 5]])
    assert np.array_equal(pick(x, np.array([0, 6]))[:], pick(array, np.array([0, 6])))
    assert np.array_equal(np.asarray(subset), array[[5, 1, 3]])


def test_transform_is_the_preprocessing_arithmetic(stored):
    array, x = stored
    scaled = x.map(Scaled(1 / 255, -0.5))
    expected = np.array(array, np.float32)
    expected *= np.float32(1 / 255)
    expected += np.float32(-0.5)
    assert scaled.dtype == np.float32 and scaled.shape == array.shape
    assert np.array_equal(scaled[:], expected) and np.array_equal(scaled.take([2])[0], expected[2])
    nchw = to_layout(scaled, "nchw")
    assert on_disk(nchw) and nchw.shape == (7, 2, 3, 2)
    assert np.array_equal(nchw[[1, 4]], np.transpose(expected[[1, 4]], (0, 3, 1, 2)))
    assert x.digest() != scaled.digest() != nchw.digest() and scaled.digest() == x.map(Scaled(1 / 255, -0.5)).digest()


def test_reads_with_pread_not_memmap(stored, monkeypatch):
    array, x = stored
    calls = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, offset: calls.append((n, offset)) or real(fd, n, offset))
    monkeypatch.setattr(np, "memmap", None)
    assert np.array_equal(x[[2, 3, 4, 0]], array[[2, 3, 4, 0]])
    assert len(calls) == 2  # one read for the run 2, 3, 4 and one for row 0


def test_pickles_without_its_descriptor(stored):
    import pickle

    array, x = stored
    x[0]
    again = pickle.loads(pickle.dumps(x.take([1, 2])))
    assert np.array_equal(again[:], array[1:3])


def test_a_failed_write_leaves_nothing(tmp_path):
    def rows():
        yield np.zeros((2, 2), np.uint8)
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError):
        write_rows(tmp_path / "x.npy", rows(), 3, (2, 2), np.uint8)
    with pytest.raises(ValueError, match="1 rows written"):
        write_rows(tmp_path / "x.npy", iter([np.zeros((2, 2), np.uint8)]), 2, (2, 2), np.uint8)
    assert list(tmp_path.iterdir()) == []


# --- image folders -------------------------------------------------------------------------------


def image_folder(root: Path, per_class=6, size=(9, 7)) -> Path:
    rng = np.random.default_rng(0)
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i:03d}.png")
    return root


def decoded_in_memory(files, image_size):
    """The in-memory decode of before streaming: each image resized, as float32 0..255."""
    h, w = image_size
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((w, h), Image.Resampling.BILINEAR),
                                dtype=np.float32) for f in files])


def test_image_folder_streams_the_same_samples(tmp_path):
    root = image_folder(tmp_path / "imgs")
    x_train, y_train, x_test, y_test, classes, _ = load_image_folder(root, (5, 4), tmp_path / "cache")
    assert on_disk(x_train) and x_train.shape == (14, 5, 4, 3) and x_test.shape == (4, 5, 4, 3)
    files = sorted(f for f in root.rglob("*") if f.suffix in EXTENSIONS)  # class by class, as listed
    labels = np.array([classes.index(f.parent.name) for f in files])
    keep, held = split_indices(labels, TEST_FRACTION, rng(0, "image_folder test split"), stratify=True)
    everything = decoded_in_memory(files, (5, 4))
    assert np.array_equal(np.asarray(x_train, np.float32), everything[keep]) and np.array_equal(y_train, labels[keep])
    assert np.array_equal(np.asarray(x_test, np.float32), everything[held]) and np.array_equal(y_test, labels[held])


def test_cache_is_reused_until_the_folder_changes(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "imgs", per_class=3)
    cache = tmp_path / "cache"
    load_image_folder(root, (4, 4), cache)
    (entry,) = cache.iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["test.npy", "train.npy"]
    import edgekit.data.images as images

    monkeypatch.setattr(images, "_pixels", lambda *a: pytest.fail("decoded again"))
    load_image_folder(root, (4, 4), cache)  # unchanged: read from the cache
    monkeypatch.undo()
    load_image_folder(root, (3, 3), cache)  # another size: another entry
    Image.new("RGB", (9, 7), (1, 2, 3)).save(root / "class0" / "new.png")
    load_image_folder(root, (4, 4), cache)  # another file: another entry
    assert len(list(cache.iterdir())) == 3


def test_dataset_from_an_image_folder_keeps_splits_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", per_class=10)
    config = DataConfig(source="image_folder", path=str(root), image_size=[4, 4], scale=1 / 255,
                        validation_split=0.2, calibration_samples=5)
    ds = load_dataset(config, "classification", seed=3, resolve=Path)
    assert all(on_disk(x) for x in (ds.x_train, ds.x_val, ds.x_test)) and isinstance(ds.x_calib, np.ndarray)
    assert (tmp_path / "cache" / "data").is_dir()
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 30 and ds.x_calib.shape == (5, 4, 4, 3)
    assert ds.x_train.dtype == np.float32 and float(np.asarray(ds.x_train).max()) <= 1.0
    again = load_dataset(config, "classification", seed=3, resolve=Path)
    assert ds.fingerprint() == again.fingerprint()
    assert np.array_equal(np.asarray(ds.x_val), np.asarray(again.x_val)) and np.array_equal(ds.x_calib, again.x_calib)
    shutil.rmtree(tmp_path / "cache")  # decoded afresh: the same content keeps the same fingerprint (stage cache keys)
    assert load_dataset(config, "classification", seed=3, resolve=Path).fingerprint() == ds.fingerprint()
    other = load_dataset(config, "classification", seed=4, resolve=Path)
    assert other.fingerprint() != ds.fingerprint()  # another seed, other validation rows


def test_a_scale_that_overflows_decoded_pixels_is_an_input_error(tmp_path, monkeypatch):
    from edgekit.errors import InputError

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    root = image_folder(tmp_path / "imgs", per_class=3)
    config = DataConfig(source="image_folder", path=str(root), image_size=[4, 4], scale=1e37, calibration_samples=2)
    with pytest.raises(InputError, match="overflows float32"):
        load_dataset(config, "classification", seed=0, resolve=Path)
