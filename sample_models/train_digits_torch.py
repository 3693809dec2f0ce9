"""Train the sample PyTorch teacher that recipes/digits_torch.yaml compresses.

The same `cnn_small` (width 1.0) as the Keras sample teacher, built from edgekit's torch zoo and
trained on the same fixed digits split, saved three ways:
  digits_cnn_torch.pt2   torch.export ExportedProgram (dynamic batch)
  digits_cnn_torch.pt    TorchScript
  digits_cnn_torch.pth   state_dict, rebuilt by `digits_torch_factory:build_model` (teacher.factory)

    .venv/bin/python sample_models/train_digits_torch.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from digits_torch_factory import build_model  # noqa: E402
from edgekit.backends import get_backend  # noqa: E402
from edgekit.data import load_dataset  # noqa: E402
from edgekit.recipe import DataConfig  # noqa: E402

SEED = 0


def main() -> None:
    data = load_dataset(DataConfig(source="digits", scale=1 / 16), task="classification", seed=SEED, resolve=Path)
    backend = get_backend("torch")
    torch.manual_seed(SEED)
    model = backend.train(build_model(), data, epochs=20, batch_size=32, learning_rate=1e-3, seed=SEED).eval()
    accuracy = float((backend.predict(model, data.x_test).argmax(1) == data.y_test).mean())
    example = torch.from_numpy(data.x_test[:2].transpose(0, 3, 1, 2).copy())  # batch 2: 1 would be specialised
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(HERE / "digits_cnn_torch.pt2"))
    torch.jit.save(torch.jit.trace(model, example), str(HERE / "digits_cnn_torch.pt"))
    torch.save(model.state_dict(), HERE / "digits_cnn_torch.pth")
    print(f"digits_cnn_torch: {backend.describe(model)['params']} parameters, test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
