"""Torch training and prediction on an image folder that streams from disk: the same batches, the
same weights and the same accuracy as on the same samples loaded into memory."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends.torch import BACKEND, train  # noqa: E402
from edgekit.data.ondisk import on_disk  # noqa: E402
from tests.helpers import image_folder_dataset, pattern_image_folder  # noqa: E402


def test_training_on_a_streamed_image_folder_matches_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 320))
    assert on_disk(streamed.x_train) and not on_disk(in_memory.x_train)
    model = BACKEND.build("cnn_tiny", 0.5, streamed.input_shape, streamed.num_classes, "classification", seed=0)
    results = {}
    for name, data in (("streamed", streamed), ("in_memory", in_memory)):
        trained = train.fit(model, data, epochs=2, batch_size=32, learning_rate=0.01, seed=0)
        scores = train.predict(trained, data.x_test)
        results[name] = (scores, [p.detach().numpy() for p in trained.parameters()])
    (a, weights_a), (b, weights_b) = results["streamed"], results["in_memory"]
    assert all(np.array_equal(x, y) for x, y in zip(weights_a, weights_b))
    assert np.array_equal(a, b)
    accuracy = float((a.argmax(-1) == streamed.y_test).mean())
    assert accuracy > 0.5


def test_a_workers_share_of_a_batch_reads_the_same_rows(tmp_path, monkeypatch):
    from edgekit.compute import split_batch

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 60))
    order = torch.randperm(len(streamed.x_train), generator=torch.Generator().manual_seed(0))
    disk, memory = train._row_reader(streamed.x_train), train._row_reader(in_memory.x_train)
    for rank in range(2):
        index = split_batch(order[4:20], rank, 2)
        rows = disk(index)
        assert rows.shape == (8, 3, 16, 16) and rows.dtype == torch.float32
        assert torch.equal(rows, memory(index))
