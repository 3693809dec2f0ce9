"""Layouts at the torch boundary.

edgekit's datasets are channels-last (NHWC); torch modules take NCHW. Images (4-D arrays) are
transposed on the way in; other ranks pass unchanged (a `(steps, features)` input is the model's
own business, e.g. a zoo conv net adds the channel axis itself).
"""

from __future__ import annotations

import numpy as np


def to_nchw(x: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW for 4-D arrays; other ranks unchanged."""
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))) if x.ndim == 4 else x


def model_shape(sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-sample shape a torch model sees for a channels-last per-sample shape."""
    return (sample_shape[2], sample_shape[0], sample_shape[1]) if len(sample_shape) == 3 else tuple(sample_shape)
