"""Keras training on an image folder that streams from disk (`DiskBatches`): it learns as well as
on the same samples in memory, and prediction reads the split batch by batch."""

from __future__ import annotations

import numpy as np

from edgekit.backends.keras import train, zoo
from edgekit.backends.keras.streaming import DiskBatches, fit_inputs
from edgekit.data.ondisk import on_disk
from tests.helpers import image_folder_dataset, pattern_image_folder


def test_disk_batches_cover_every_sample_once_per_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 60), validation=0.0)
    batches = DiskBatches(streamed.x_train, streamed.y_train, 16, seed=0)
    assert len(batches) == -(-len(streamed.x_train) // 16)
    for _ in range(2):
        xs, ys = zip(*(batches[i] for i in range(len(batches))))
        x, y = np.concatenate(xs), np.concatenate(ys)
        order = np.lexsort(x.reshape(len(x), -1).T)
        expected = np.lexsort(in_memory.x_train.reshape(len(x), -1).T)
        assert np.array_equal(x[order], in_memory.x_train[expected]) and np.array_equal(y[order], in_memory.y_train[expected])
        batches.on_epoch_end()
    args, kwargs = fit_inputs(in_memory.x_train, in_memory.y_train, in_memory.x_val, in_memory.y_val, 16, 0)
    assert args[0] is in_memory.x_train and kwargs["batch_size"] == 16  # in memory: fit gets the arrays, as before


def test_training_on_a_streamed_image_folder_learns_like_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 320))
    assert on_disk(streamed.x_train) and on_disk(streamed.x_test)
    accuracy = {}
    for name, data in (("streamed", streamed), ("in_memory", in_memory)):
        model = zoo.build("cnn_tiny", 0.5, data.input_shape, data.num_classes, "classification")
        trained = train.fit(model, data, epochs=6, batch_size=32, learning_rate=0.01, seed=0)
        accuracy[name] = float((train.predict(trained, data.x_test).argmax(-1) == data.y_test).mean())
    assert accuracy["in_memory"] > 0.5
    assert abs(accuracy["streamed"] - accuracy["in_memory"]) <= 0.1, accuracy


def test_distillation_trains_a_student_from_a_streamed_image_folder(tmp_path, monkeypatch):
    from edgekit.recipe import DistillConfig
    from edgekit.stages import run_stage
    from tests.helpers import stage_context, trained_artifact

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, _ = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 320))
    teacher = trained_artifact("keras", streamed, epochs=4, arch="cnn_tiny", width=0.5)
    result = run_stage(teacher, DistillConfig(epochs=4, learning_rate=1e-2), stage_context(streamed, "keras"))
    accuracy = float((train.predict(result.model, streamed.x_test).argmax(-1) == streamed.y_test).mean())
    assert accuracy > 0.5
