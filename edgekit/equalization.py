"""Cross-layer equalization: rescale the channels between two layers so their weight ranges match.

When a layer's output channel c feeds the next layer through ops that commute with a positive
per-channel scale (ReLU, max pooling, dropout, flatten, nothing), dividing that channel's weights and
bias in the first layer by s_c and multiplying the weights that read it in the second layer by s_c
leaves the model's function unchanged. Choosing s_c = sqrt(r1_c / r2_c), where r1_c is the range of
output channel c of the first weight and r2_c the range of the second weight's inputs from channel
c, gives both the same range sqrt(r1_c * r2_c) (Nagel et al., "Data-Free Quantization Through Weight
Equalization and Bias Correction", ICCV 2019, section 4.1; AIMET and NNCF implement the same rule).
A channel whose activations are hundreds of times larger than its neighbours' (which happens after
some training recipes, and ruins a per-tensor int8 activation scale) is brought back in line.

This module is the arithmetic on numpy arrays, whatever the framework; each backend finds the
pairs in its model's graph and reads and writes its weights (`Backend.equalize`).

    >>> import numpy as np
    >>> w1, b1 = np.array([[1.0], [300.0]]), np.array([0.0, 30.0])   # out channels x inputs
    >>> w2 = np.array([[2.0, 1 / 150]])                               # outputs x in channels
    >>> w1e, b1e, w2e, s = equalize_pair(w1, b1, w2.T, np.arange(2))
    >>> np.round(s, 3).tolist(), np.round(w1e[:, 0], 3).tolist(), np.round(w2e.T[0], 3).tolist()
    ([0.707, 212.132], [1.414, 1.414], [1.414, 1.414])
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: scales are kept within these bounds: a channel with no weight (pruned) is left as it is
MIN_RANGE = 1e-8


def equalize_pair(w1_out: np.ndarray, b1: Optional[np.ndarray], w2_in: np.ndarray, channel_of_input: np.ndarray
                  ) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray, np.ndarray]:
    """Equalized copies of one pair of weights, and the scales s (one per channel of the first layer).

    `w1_out`: the first weight with its output channels first (C, ...); `b1`: its bias (C,) or None;
    `w2_in`: the second weight with its input rows first (R, ...); `channel_of_input`: for each of
    the R input rows of the second weight, the channel of the first layer it reads (a flatten
    between them makes several rows read one channel). The inputs are not modified."""
    channels = w1_out.shape[0]
    r1 = np.abs(w1_out.reshape(channels, -1)).max(axis=1)
    rows = np.abs(w2_in.reshape(w2_in.shape[0], -1)).max(axis=1)
    r2 = np.zeros(channels)
    np.maximum.at(r2, channel_of_input, rows)
    usable = (r1 > MIN_RANGE) & (r2 > MIN_RANGE)
    scales = np.ones(channels)
    scales[usable] = np.sqrt(r1[usable] / r2[usable])
    shape1 = (channels,) + (1,) * (w1_out.ndim - 1)
    w1e = (w1_out / scales.reshape(shape1)).astype(w1_out.dtype)
    b1e = None if b1 is None else (b1 / scales).astype(b1.dtype)
    row_scales = scales[channel_of_input].reshape((w2_in.shape[0],) + (1,) * (w2_in.ndim - 1))
    w2e = (w2_in * row_scales).astype(w2_in.dtype)
    return w1e, b1e, w2e, scales


def channels_of_flatten(rows: int, channels: int, channels_last: bool) -> np.ndarray:
    """Which channel each input row of a dense layer reads after a flatten of C channels: channel
    fastest for NHWC (Keras), slowest for NCHW (torch)."""
    if rows % channels:
        raise ValueError(f"{rows} inputs are not a whole number of positions of {channels} channels")
    index = np.arange(rows)
    return index % channels if channels_last else index // (rows // channels)


def imbalance(w1_out: np.ndarray) -> float:
    """Largest over median output-channel range of a weight: how far a layer is from equalized."""
    ranges = np.abs(w1_out.reshape(w1_out.shape[0], -1)).max(axis=1)
    ranges = ranges[ranges > MIN_RANGE]
    return float(ranges.max() / np.median(ranges)) if len(ranges) else 1.0
