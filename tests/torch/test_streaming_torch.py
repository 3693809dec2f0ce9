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
    """The streamed split is read by 2 DataLoader processes; the batches, so the weights, the
    predictions and torch's random state afterwards, are those of the in-memory run."""
    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGEKIT_LOADER_WORKERS", "2")
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 320))
    assert on_disk(streamed.x_train) and not on_disk(in_memory.x_train)
    model = BACKEND.build("cnn_tiny", 0.5, streamed.input_shape, streamed.num_classes, "classification", seed=0)
    results = {}
    for name, data in (("streamed", streamed), ("in_memory", in_memory)):
        trained = train.fit(model, data, epochs=2, batch_size=32, learning_rate=0.01, seed=0)
        random_state = torch.get_rng_state()
        scores = train.predict(trained, data.x_test)
        results[name] = (scores, [p.detach().numpy() for p in trained.parameters()], random_state)
    (a, weights_a, state_a), (b, weights_b, state_b) = results["streamed"], results["in_memory"]
    assert torch.equal(state_a, state_b)  # the loader drew its seeds from its own generator
    assert all(np.array_equal(x, y) for x, y in zip(weights_a, weights_b))
    assert np.array_equal(a, b)
    accuracy = float((a.argmax(-1) == streamed.y_test).mean())
    assert accuracy > 0.5


def test_a_workers_share_of_a_batch_reads_the_same_rows(tmp_path, monkeypatch):
    from edgekit.backends.torch.loader import EpochBatches, batch_loader

    monkeypatch.setenv("EDGEKIT_CACHE_DIR", str(tmp_path / "cache"))
    streamed, in_memory = image_folder_dataset(pattern_image_folder(tmp_path / "imgs", 60))
    n = len(streamed.x_train)
    whole = torch.from_numpy(np.transpose(in_memory.x_train, (0, 3, 1, 2)).copy())
    for rank in range(2):
        def sampler():
            return EpochBatches(n, 16, torch.Generator().manual_seed(0), rank, 2, False)
        in_memory_sampler, loader = sampler(), batch_loader(streamed.x_train, sampler(), workers=1)
        for _ in range(2):  # two epochs: each draws its own permutation, the same in both
            epoch = list(in_memory_sampler.epoch())
            read = list(loader)
            assert len(read) == len(epoch) == len(in_memory_sampler)
            for (rows, index), want in zip(read, epoch):
                assert torch.equal(index, want) and rows.dtype == torch.float32
                assert torch.equal(rows, whole[want])


@pytest.mark.parametrize("n,batch_size,workers,full", [(60, 16, 1, False), (61, 16, 1, False), (65, 16, 2, False),
                                                        (66, 16, 2, False), (60, 16, 1, True), (3, 16, 2, False)])
def test_epoch_batches_keep_the_tail_rules(n, batch_size, workers, full):
    from edgekit.backends.torch.loader import EpochBatches

    sampler = EpochBatches(n, batch_size, torch.Generator().manual_seed(0), 0, workers, full)
    batches = [list(range(n))[start:start + batch_size] for start in range(0, n, batch_size)]
    tail = n % batch_size
    if tail and (full or (n > tail and tail < 2 * workers)):
        batches = batches[:-1]
    assert len(sampler) == len(list(sampler.epoch())) == len(batches)
    assert sum(len(b) for b in sampler.epoch()) == sum(len(b[::workers]) for b in batches)
