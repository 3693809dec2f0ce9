"""edgekit.data sources: every test writes its own tiny data in tmp_path (no network, no TF/torch)."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.data.sources import SOURCES, load_dataset
from edgekit.errors import InputError
from edgekit.recipe import DataConfig


@pytest.fixture(autouse=True)
def data_cache(tmp_path, monkeypatch):
    """Decoded image folders go to this test's own cache, never the user's."""
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "data"


def build(task="classification", seed=0, **data):
    return load_dataset(DataConfig(**data), task=task, seed=seed, resolve=Path)


def npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def classes_npz(tmp_path, n_train=100, n_test=20, shape=(4, 4, 1), **extra):
    """Train labels: 40% class 0, 60% class 1; x value i for sample i, so rows can be traced back."""
    x_train = np.arange(n_train, dtype=np.float32)[:, None].repeat(int(np.prod(shape)), 1).reshape(n_train, *shape)
    y_train = (np.arange(n_train) >= n_train * 0.4).astype(np.int64)
    x_test = np.arange(n_test, dtype=np.float32)[:, None].repeat(int(np.prod(shape)), 1).reshape(n_test, *shape)
    arrays = dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=np.arange(n_test) % 2)
    arrays.update(extra)
    return npz(tmp_path, **arrays)


# --- digits --------------------------------------------------------------------------------------


def test_digits_shapes_labels_and_test_split_independent_of_seed():
    a = build(source="digits", scale=0.0625, seed=0)
    b = build(source="digits", scale=0.0625, seed=1)
    assert a.x_train.shape[1:] == (8, 8, 1) and a.x_train.dtype == np.float32
    assert len(a.x_train) + len(a.x_val) + len(a.x_test) == 1797
    assert len(a.x_test) == 360
    assert np.array_equal(a.x_test, b.x_test) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_val, b.y_val)  # the validation split does follow the seed
    assert a.labels == [str(i) for i in range(10)]
    assert 0.0 <= a.x_train.min() and a.x_train.max() == 1.0  # 16 * 0.0625


def test_registry_and_layout_only_for_npz():
    assert set(SOURCES) == {"digits", "npz", "image_folder", "keras"}
    with pytest.raises(InputError, match="data.layout"):
        build(source="digits", layout="nchw")


# --- splits --------------------------------------------------------------------------------------


def test_validation_split_is_stratified_and_seeded(tmp_path):
    path = classes_npz(tmp_path)
    ds = build(source="npz", path=path, validation_split=0.1, calibration_samples=5, seed=3)
    assert len(ds.x_val) == 10 and len(ds.x_train) == 90
    assert np.bincount(ds.y_val).tolist() == [4, 6]
    again = build(source="npz", path=path, validation_split=0.1, calibration_samples=5, seed=3)
    assert np.array_equal(ds.x_val, again.x_val)
    # train and val are disjoint and together are the original train split
    seen = sorted(np.concatenate([ds.x_train[:, 0, 0, 0], ds.x_val[:, 0, 0, 0]]).tolist())
    assert seen == list(range(100))


def test_validation_split_zero_gives_empty_arrays_with_shape(tmp_path):
    ds = build(source="npz", path=classes_npz(tmp_path), validation_split=0.0, calibration_samples=5)
    assert ds.x_val.shape == (0, 4, 4, 1) and ds.y_val.shape == (0,)
    assert len(ds.x_train) == 100


def test_validation_split_falls_back_when_a_class_has_one_sample(tmp_path):
    y = np.array([0] * 9 + [1])
    path = npz(tmp_path, x_train=np.arange(10.0)[:, None], y_train=y, x_test=np.zeros((2, 1)), y_test=[0, 1])
    ds = build(source="npz", path=path, validation_split=0.3, calibration_samples=1)
    assert len(ds.x_val) == 3 and len(ds.x_train) == 7


def test_calibration_samples_come_from_train_and_too_many_is_an_error(tmp_path):
    path = classes_npz(tmp_path)
    ds = build(source="npz", path=path, validation_split=0.1, calibration_samples=20)
    assert ds.x_calib.shape == (20, 4, 4, 1)
    assert set(ds.x_calib[:, 0, 0, 0].tolist()) <= set(ds.x_train[:, 0, 0, 0].tolist())
    with pytest.raises(InputError, match=r"only 90 train samples.*data\.calibration_samples: 90"):
        build(source="npz", path=path, validation_split=0.1, calibration_samples=91)


def test_test_samples_caps_the_test_set_the_same_for_every_seed(tmp_path):
    path = classes_npz(tmp_path, n_test=50)
    a = build(source="npz", path=path, test_samples=7, calibration_samples=5, seed=0)
    b = build(source="npz", path=path, test_samples=7, calibration_samples=5, seed=1)
    assert len(a.x_test) == 7 and np.array_equal(a.x_test, b.x_test)
    assert len(set(a.x_test[:, 0, 0, 0].tolist())) == 7
    assert len(build(source="npz", path=path, calibration_samples=5).x_test) == 50


# --- layout and preprocessing --------------------------------------------------------------------


def test_nchw_arrays_are_transposed_to_channels_last(tmp_path):
    rng = np.random.default_rng(0)
    x4, x3, x2 = rng.random((6, 3, 4, 5)), rng.random((6, 2, 7)), rng.random((6, 9))
    y = np.arange(6) % 2
    common = dict(layout="nchw", validation_split=0.0, calibration_samples=2)
    ds = build(source="npz", path=npz(tmp_path, "a.npz", x_train=x4, y_train=y, x_test=x4, y_test=y), **common)
    assert ds.x_test.shape == (6, 4, 5, 3)
    assert ds.x_test[2, 1, 3, 2] == np.float32(x4[2, 2, 1, 3])
    assert ds.preprocessing["stored_layout"] == "nchw" and ds.preprocessing["layout"] == "nhwc"
    ds = build(source="npz", path=npz(tmp_path, "b.npz", x_train=x3, y_train=y, x_test=x3, y_test=y), **common)
    assert ds.x_test.shape == (6, 7, 2) and ds.x_test[1, 5, 1] == np.float32(x3[1, 1, 5])
    ds = build(source="npz", path=npz(tmp_path, "c.npz", x_train=x2, y_train=y, x_test=x2, y_test=y), **common)
    assert ds.x_test.shape == (6, 9) and np.array_equal(ds.x_test, x2.astype(np.float32))


def test_scale_and_offset_are_applied_as_float32(tmp_path):
    x = np.array([[0], [128], [255]], dtype=np.uint8)
    path = npz(tmp_path, x_train=x, y_train=[0, 1, 0], x_test=x, y_test=[0, 1, 0])
    ds = build(source="npz", path=path, scale=1 / 127.5, offset=-1.0, validation_split=0.0, calibration_samples=1)
    assert ds.x_test.dtype == np.float32
    np.testing.assert_allclose(ds.x_test[:, 0], [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-6)
    assert ds.preprocessing["scale"] == pytest.approx(1 / 127.5) and ds.preprocessing["offset"] == -1.0


# --- npz -----------------------------------------------------------------------------------------


def test_npz_keys_rename_and_one_array_may_serve_two_keys(tmp_path):
    specs, labels = np.random.default_rng(1).random((8, 5, 3)), np.arange(8) % 4
    path = npz(tmp_path, specs=specs, labels=labels)
    keys = {"x_train": "specs", "y_train": "labels", "x_test": "specs", "y_test": "labels"}
    ds = build(source="npz", path=path, keys=keys, validation_split=0.0, calibration_samples=2)
    assert np.array_equal(ds.x_test, specs.astype(np.float32)) and np.array_equal(ds.y_test, labels)
    assert np.array_equal(ds.x_train, ds.x_test) and ds.num_classes == 4


def test_npz_missing_key_names_the_recipe_key_and_the_arrays(tmp_path):
    path = npz(tmp_path, x_train=np.zeros((2, 1)), y_train=[0, 1], images=np.zeros((2, 1)), y_test=[0, 1])
    with pytest.raises(InputError) as err:
        build(source="npz", path=path)
    message = str(err.value)
    assert "data.keys.x_test" in message and "'x_test'" in message and "images" in message and path in message


def test_npz_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        build(source="npz", path=str(tmp_path / "absent.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(InputError, match="not a readable .npz"):
        build(source="npz", path=str(bad))


def test_nan_in_x_is_rejected_with_split_and_count(tmp_path):
    x = np.ones((4, 3))
    x[1, 0] = np.nan
    x[2, 2] = np.inf
    path = npz(tmp_path, x_train=x, y_train=[0, 1, 0, 1], x_test=np.ones((2, 3)), y_test=[0, 1])
    with pytest.raises(InputError, match=r"x_train holds 2 NaN or infinite"):
        build(source="npz", path=path, calibration_samples=1)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"y_train": [0, 1, 0]}, "x_train has 4 samples but y_train has 3"),
        ({"x_test": np.ones((2, 5))}, "same kind of input"),
        ({"x_test": np.ones((0, 3)), "y_test": np.zeros(0)}, "test split is empty"),
        ({"y_train": [0.0, 1.5, 0.0, 1.0]}, "non-integer"),
        ({"y_train": [0, -1, 0, 1]}, "negative class ids"),
        ({"y_train": [[0.2, 0.8]] * 4}, "not one-hot"),
    ],
)
def test_bad_arrays_are_input_errors(tmp_path, change, message):
    arrays = dict(x_train=np.ones((4, 3)), y_train=[0, 1, 0, 1], x_test=np.ones((2, 3)), y_test=[0, 1])
    arrays.update(change)
    with pytest.raises(InputError, match=message):
        build(source="npz", path=npz(tmp_path, **arrays), calibration_samples=1)


def test_one_hot_and_integral_float_labels_become_class_ids(tmp_path):
    y = np.array([2, 0, 1, 2])
    path = npz(tmp_path, x_train=np.ones((4, 3)), y_train=np.eye(3)[y], x_test=np.ones((4, 3)), y_test=y.astype(float))
    ds = build(source="npz", path=path, validation_split=0.0, calibration_samples=1)
    assert ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [2, 0, 1, 2]
    assert ds.y_test.dtype == np.int64 and ds.y_test.tolist() == [2, 0, 1, 2]


def test_regression_targets_stay_float(tmp_path):
    path = npz(tmp_path, x_train=np.ones((4, 3)), y_train=[0.5, 1.5, 2.0, 3.25], x_test=np.ones((2, 3)), y_test=[1.0, 2.5])
    ds = build(task="regression", source="npz", path=path, validation_split=0.0, calibration_samples=1)
    assert ds.y_train.dtype == np.float32 and ds.y_train.tolist() == [0.5, 1.5, 2.0, 3.25] and ds.labels is None


def test_labels_from_txt_file_and_too_few_names(tmp_path):
    path = npz(tmp_path, x_train=np.ones((6, 2)), y_train=[0, 1, 2] * 2, x_test=np.ones((3, 2)), y_test=[0, 1, 2])
    (tmp_path / "labels.txt").write_text("cat\n\ndog\n  bird  \n\n")
    ds = build(source="npz", path=path, labels=str(tmp_path / "labels.txt"), calibration_samples=1)
    assert ds.labels == ["cat", "dog", "bird"]
    assert build(source="npz", path=path, labels=["a", "b", "c", "d"], calibration_samples=1).num_classes == 4
    with pytest.raises(InputError, match=r"data.labels: 2 class name\(s\).*3 classes"):
        build(source="npz", path=path, labels=["cat", "dog"], calibration_samples=1)
    with pytest.raises(InputError, match="data.labels"):
        build(source="npz", path=path, labels=str(tmp_path / "missing.txt"), calibration_samples=1)


def test_labels_override_source_names():
    ds = build(source="digits", labels=[f"digit{i}" for i in range(10)])
    assert ds.labels[3] == "digit3"


# --- image_folder --------------------------------------------------------------------------------


def write_images(folder, counts, mode="L", size=(6, 4), value=200):
    for name, count in counts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            color = value if mode == "L" else (value, 10, 30)
            Image.new(mode, size, color).save(folder / name / f"{i:03d}.png")


def test_image_folder_grayscale_with_fixed_split(tmp_path):
    write_images(tmp_path / "imgs", {"dog": 5, "cat": 5})
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("ignored")
    ds = build(source="image_folder", path=str(tmp_path / "imgs"), image_size=[3, 2], validation_split=0.0, calibration_samples=2)
    assert ds.labels == ["cat", "dog"]
    assert ds.x_train.shape == (8, 3, 2, 1) and ds.x_test.shape == (2, 3, 2, 1)
    assert sorted(ds.y_test.tolist()) == [0, 1]
    assert np.allclose(ds.x_train, 200.0)
    again = build(source="image_folder", path=str(tmp_path / "imgs"), image_size=[3, 2], validation_split=0.0, calibration_samples=2, seed=5)
    assert np.array_equal(ds.y_test, again.y_test) and "image folder" in ds.description


def test_image_folder_one_color_image_makes_everything_rgb(tmp_path):
    write_images(tmp_path / "imgs", {"a": 4, "b": 4})
    Image.new("RGB", (5, 5), (250, 0, 0)).save(tmp_path / "imgs" / "a" / "red.JPG")
    ds = build(source="image_folder", path=str(tmp_path / "imgs"), image_size=[4, 4], calibration_samples=1, scale=1 / 255)
    assert ds.x_train.shape[1:] == (4, 4, 3)
    everything = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    gray = everything[:, 0, 0, 0] == everything[:, 0, 0, 1]
    assert gray.sum() == 8 and (~gray).sum() == 1 and everything.max() <= 1.0


def test_image_folder_train_and_test_subfolders(tmp_path):
    write_images(tmp_path / "imgs" / "train", {"a": 3, "b": 2})
    write_images(tmp_path / "imgs" / "test", {"b": 1, "c": 2}, value=7)
    ds = build(source="image_folder", path=str(tmp_path / "imgs"), image_size=[2, 2], validation_split=0.0, calibration_samples=1)
    assert ds.labels == ["a", "b", "c"]
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1] and ds.y_test.tolist() == [1, 2, 2]
    assert np.allclose(ds.x_test, 7.0)


def test_image_folder_empty_and_unreadable(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(InputError, match=r"no images found.*empty"):
        build(source="image_folder", path=str(tmp_path / "empty"), image_size=[2, 2])
    write_images(tmp_path / "imgs", {"a": 2, "b": 2})
    (tmp_path / "imgs" / "a" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"broken\.png.*Pillow cannot read"):
        build(source="image_folder", path=str(tmp_path / "imgs"), image_size=[2, 2])


# --- keras cache ---------------------------------------------------------------------------------


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    datasets = tmp_path / "kh" / "datasets"
    datasets.mkdir(parents=True)
    return datasets


def test_keras_mnist_from_cache(keras_home):
    x = np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28)
    np.savez(keras_home / "mnist.npz", x_train=x, y_train=np.array([0, 1, 2, 3, 4], np.uint8), x_test=x[:2], y_test=np.array([5, 9], np.uint8))
    ds = build(source="keras", name="mnist", validation_split=0.0, calibration_samples=2)
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_test[1, 3, 4, 0] == x[1, 3, 4]
    assert ds.labels == [str(i) for i in range(10)] and ds.y_test.tolist() == [5, 9]


def write_idx(path, array):
    dims = array.ndim
    header = np.array([0x0800 + dims, *array.shape], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_keras_fashion_mnist_from_idx_files(keras_home):
    folder = keras_home / "fashion-mnist"
    folder.mkdir()
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28))
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.array([9, 0, 1, 2]))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[:3])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.array([3, 4, 9]))
    ds = build(source="keras", name="fashion_mnist", validation_split=0.0, calibration_samples=2)
    assert ds.x_train.shape == (4, 28, 28, 1) and ds.x_train[2, 5, 6, 0] == images[2, 5, 6]
    assert ds.y_train.tolist() == [9, 0, 1, 2] and ds.labels[9] == "Ankle boot" and ds.labels[0] == "T-shirt/top"


def write_cifar(folder, batch_size=2):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (batch_size, 3072)).astype(np.uint8)
        labels = rng.integers(0, 10, batch_size).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"x"}, f, protocol=2)
        batches[name] = (data, labels)
    return batches


def test_keras_cifar10_from_pickled_batches(keras_home):
    batches = write_cifar(keras_home / "cifar-10-batches-py")
    ds = build(source="keras", name="cifar10", validation_split=0.0, calibration_samples=2)
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (2, 32, 32, 3)
    data, labels = batches["data_batch_2"]
    # sample 1 of batch 2 is train sample 3; pixel (row 4, col 7) of channel 2 sits at 2*1024 + 4*32 + 7
    assert ds.x_train[3, 4, 7, 2] == data[1, 2 * 1024 + 4 * 32 + 7] and ds.y_train[3] == labels[1]
    assert ds.labels[0] == "airplane" and ds.labels[9] == "truck"


def test_keras_cifar10_keras3_cache_layout(keras_home):
    write_cifar(keras_home / "cifar-10-batches-py-target" / "cifar-10-batches-py")
    assert len(build(source="keras", name="cifar10", calibration_samples=2).x_test) == 2


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_keras_cifar10_pickle_with_a_forbidden_global_is_refused(keras_home, tmp_path):
    folder = keras_home / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Exploit(marker), b"labels": [0]}, f)
    with pytest.raises(InputError, match=r"data_batch_3.*refusing to load global '(posix|os)\.system'"):
        build(source="keras", name="cifar10", calibration_samples=2)
    assert not marker.exists()


def test_keras_missing_files_say_where_and_how(keras_home):
    with pytest.raises(InputError) as err:
        build(source="keras", name="mnist")
    message = str(err.value)
    assert "does not download" in message and str(keras_home / "mnist.npz") in message
    assert "keras.datasets.mnist.load_data()" in message and "KERAS_HOME" in message
    (keras_home / "fashion-mnist").mkdir()
    with pytest.raises(InputError, match=r"fashion-mnist/t10k-labels-idx1-ubyte\.gz"):
        build(source="keras", name="fashion_mnist")


# --- no heavy frameworks -------------------------------------------------------------------------


def test_data_modules_import_no_tensorflow_or_torch():
    code = (
        "import sys, pathlib; from edgekit.data.sources import load_dataset; import edgekit.data.images, "
        "edgekit.data.keras_cache; from edgekit.recipe import DataConfig; "
        "load_dataset(DataConfig(), 'classification', 0, pathlib.Path); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'torch', 'keras', 'tf_keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip() == "[]"
