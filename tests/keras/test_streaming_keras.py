"""Keras training on an image folder that streams from disk (a `tf.data` pipeline, `disk_dataset`):
it learns as well as on the same samples in memory, in as many steps, and prediction reads the
split batch by batch."""

from __future__ import annotations

import numpy as np

from edgekit.backends.keras import train, zoo
from edgekit.backends.keras.compat import keras, tf
from edgekit.backends.keras.streaming import disk_dataset, fit_inputs
from edgekit.data.ondisk import on_disk
from tests.helpers import image_folder_dataset, pattern_image_folder


def _sorted(x, y):
    order = np.lexsort(x.reshape(len(x), -1).T)
    return x[order], y[order]


def test_disk_dataset_covers_every_sample_once_per_epoch_in_a_fresh_seeded_order(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 60), validation=0.0)
    n = len(streamed.x_train)
    dataset = disk_dataset(streamed.x_train, streamed.y_train, 20, seed=0)
    assert n % 20 and int(dataset.cardinality()) == -(-n // 20)
    assert dataset.element_spec[0].shape.as_list() == [None, 16, 16, 3]
    epochs = []
    for _ in range(2):
        batches = [(x.numpy(), y.numpy()) for x, y in dataset]
        assert [len(x) for x, _ in batches] == [min(20, n - start) for start in range(0, n, 20)]  # the last short
        x, y = np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])
        assert x.dtype == np.float32
        for got, want in zip(_sorted(x, y), _sorted(in_memory.x_train, in_memory.y_train)):
            assert np.array_equal(got, want)
        epochs.append(x)
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    again = np.concatenate([x.numpy() for x, _ in disk_dataset(streamed.x_train, streamed.y_train, 20, seed=0)])
    assert np.array_equal(again, epochs[0])  # the seed fixes the order
    in_order = disk_dataset(streamed.x_train, streamed.y_train, 16, shuffle=False)
    ordered = np.concatenate([x.numpy() for x, _ in in_order])
    assert np.array_equal(ordered, in_memory.x_train)
    args, kwargs = fit_inputs(in_memory.x_train, in_memory.y_train, in_memory.x_val, in_memory.y_val, 16, 0)
    assert args[0] is in_memory.x_train and kwargs["batch_size"] == 16  # in memory: fit gets the arrays, as before


def test_the_pipeline_shards_by_data_under_a_multi_worker_strategy(tmp_path, monkeypatch):
    from edgekit.backends.keras import distributed, streaming

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, _ = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 60), validation=0.0)
    policy = tf.data.experimental.AutoShardPolicy
    alone = disk_dataset(streamed.x_train, streamed.y_train, 8).options().experimental_distribute.auto_shard_policy
    monkeypatch.setattr(distributed, "active", lambda: object())
    shared = streaming.disk_dataset(streamed.x_train, streamed.y_train, 8).options().experimental_distribute
    assert alone == policy.AUTO and shared.auto_shard_policy == policy.DATA


class _Steps(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


def test_training_on_a_streamed_image_folder_learns_like_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 320))
    assert on_disk(streamed.x_train) and on_disk(streamed.x_test)
    accuracy, steps = {}, {}
    for name, data in (("streamed", streamed), ("in_memory", in_memory)):
        model = zoo.build("cnn_tiny", 0.5, data.input_shape, data.num_classes, "classification")
        trained, counter = train.training_copy(model), _Steps()
        history = train.compile_and_fit(trained, data, epochs=6, batch_size=32, learning_rate=0.01, seed=0,
                                        callbacks=[counter])
        assert len(history.history["val_accuracy"]) == 6  # validated every epoch, from disk when streamed
        steps[name] = counter.steps
        accuracy[name] = float((train.predict(trained, data.x_test).argmax(-1) == data.y_test).mean())
    assert steps["streamed"] == steps["in_memory"] == -(-len(streamed.x_train) // 32)
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
