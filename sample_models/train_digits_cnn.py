"""Train the sample Keras teacher `digits_cnn.keras` that recipes/quickstart.yaml compresses.

A `cnn_small` from edgekit's zoo (about 150k parameters) trained on scikit-learn's bundled digits,
on the same fixed train split that edgekit's `digits` source uses, so its test split stays unseen.

    .venv/bin/python sample_models/train_digits_cnn.py   # rewrites sample_models/digits_cnn.keras
"""

from __future__ import annotations

from pathlib import Path

from edgekit.backends import get_backend
from edgekit.data import load_dataset
from edgekit.recipe import DataConfig

HERE = Path(__file__).resolve().parent
SEED = 0


def main() -> None:
    data = load_dataset(DataConfig(source="digits", scale=1 / 16), task="classification", seed=SEED, resolve=Path)
    keras = get_backend("keras")
    model = keras.build("cnn_small", 1.0, data.input_shape, data.num_classes, "classification", SEED)
    model = keras.train(model, data, epochs=20, batch_size=32, learning_rate=1e-3, seed=SEED)
    accuracy = float((keras.predict(model, data.x_test).argmax(1) == data.y_test).mean())
    # An uncompiled copy: the file holds the weights without the optimizer's state.
    get_backend("keras").clone(model).save(HERE / "digits_cnn.keras")
    print(f"digits_cnn.keras: {keras.describe(model)['params']} parameters, test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
