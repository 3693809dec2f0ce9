"""Datasets for training, calibration and evaluation, loaded from the recipe's `data:` section.

    >>> from edgekit.data import load_dataset
    >>> ds = load_dataset(recipe.data, task="classification", seed=0, resolve=recipe.resolve_path)
    >>> ds.x_train.shape[1:], ds.num_classes
    ((8, 8, 1), 10)
"""

from edgekit.data.dataset import Dataset
from edgekit.data.sources import load_dataset

__all__ = ["Dataset", "load_dataset"]
