"""Bias correction's rule on numpy weights (edgekit.bias_correction), without a framework: with the
int8-rounded weight and the corrected bias, a layer's mean output is the float layer's."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from edgekit import bias_correction
from edgekit.bias_correction import corrected_bias, expected_shift, mean_patch, quantized_weight, same_padding

RNG = np.random.default_rng(0)


def _outlier_weight(shape) -> np.ndarray:
    """Random weights with one output channel 50 times larger: per-tensor rounding of the others is coarse."""
    w = RNG.normal(size=shape)
    w[0] *= 50
    return w


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NCHW convolution with circular padding, grouped by w.shape[1] (every position sees every kernel
    offset equally often, so the output's mean is exactly what the channel means predict)."""
    out_channels, per_group, kh, kw = w.shape
    groups = x.shape[1] // per_group
    y = np.zeros((x.shape[0], out_channels) + x.shape[2:])
    for o in range(out_channels):
        g = o // (out_channels // groups)
        xs = x[:, g * per_group:(g + 1) * per_group]
        for a in range(kh):
            for c in range(kw):
                shifted = np.roll(xs, (-a, -c), axis=(2, 3))
                y[:, o] += np.einsum("nihw,i->nhw", shifted, w[o, :, a, c])
    return y + b[None, :, None, None]


def test_the_doctest():
    assert doctest.testmod(bias_correction).failed == 0


@pytest.mark.parametrize("per_channel", [True, False])
def test_quantized_weight_is_int8_on_the_scale_of_the_largest_value(per_channel):
    w = _outlier_weight((6, 5))
    q = quantized_weight(w, per_channel)
    scale = (np.abs(w).max(axis=1, keepdims=True) if per_channel else np.abs(w).max()) / 127
    levels = q / scale
    assert np.allclose(levels, np.round(levels)) and np.abs(levels).max() <= 127 + 1e-9
    assert np.abs(q - w).max() <= np.max(scale) / 2 + 1e-12
    assert q.dtype == w.dtype and not np.array_equal(q, w)
    assert np.array_equal(quantized_weight(np.zeros((2, 3)), per_channel), np.zeros((2, 3)))


@pytest.mark.parametrize("per_channel", [True, False])
def test_a_corrected_dense_layer_keeps_the_float_mean(per_channel):
    w, b = _outlier_weight((8, 12)), RNG.normal(size=8)
    x = RNG.normal(loc=3.0, size=(500, 12))  # a positive mean, as after a ReLU
    float_mean = (x @ w.T + b).mean(axis=0)
    q = quantized_weight(w, per_channel)

    corrected = corrected_bias(w, b, x.mean(axis=0), "dense", per_channel)
    assert np.allclose((x @ q.T + corrected).mean(axis=0), float_mean, atol=1e-5)
    assert np.abs((x @ q.T + b).mean(axis=0) - float_mean).max() > 1e-3  # uncorrected, the mean moved
    assert np.array_equal(b, b.copy()) and corrected is not b


@pytest.mark.parametrize("shape, groups", [((6, 4, 3, 3), 1),   # an ordinary convolution
                                           ((6, 2, 3, 3), 2),   # grouped
                                           ((8, 1, 3, 3), 4),   # depthwise, multiplier 2
                                           ((4, 1, 3, 3), 4)])  # depthwise, multiplier 1
@pytest.mark.parametrize("per_channel", [True, False])
def test_a_corrected_convolution_keeps_the_float_mean(shape, groups, per_channel):
    w, b = _outlier_weight(shape), RNG.normal(size=shape[0])
    channels = shape[1] * groups
    x = RNG.normal(loc=np.arange(1, channels + 1)[None, :, None, None], size=(20, channels, 6, 6))
    float_mean = _conv(x, w, b).mean(axis=(0, 2, 3))
    q = quantized_weight(w, per_channel)
    kind = "depthwise" if shape[1] == 1 else "conv"

    corrected = corrected_bias(w, b, x.mean(axis=(0, 2, 3)), kind, per_channel)
    assert np.allclose(_conv(x, q, corrected).mean(axis=(0, 2, 3)), float_mean, atol=1e-5)
    assert np.abs(_conv(x, q, b).mean(axis=(0, 2, 3)) - float_mean).max() > 1e-3


def _padded_conv(x: np.ndarray, w: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, mean patch) of an NCHW convolution (not grouped) with one pixel of zero padding."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    kh, kw = w.shape[2:]
    rows, cols = range(0, padded.shape[2] - kh + 1, stride), range(0, padded.shape[3] - kw + 1, stride)
    patches = np.stack([np.stack([padded[:, :, r:r + kh, c:c + kw] for c in cols], axis=-1) for r in rows], axis=-2)
    return np.einsum("nikwhv,oikw->nohv", patches, w), patches.mean(axis=(0, 4, 5))  # (n, in, kh, kw, oh, ow)


def test_the_mean_patch_is_exact_for_a_padded_strided_convolution():
    """Zero padding makes the borders read less than the channel mean: the per-channel mean misses it
    on a small feature map, the mean patch (what each kernel position reads on average) does not."""
    w, b = _outlier_weight((5, 3, 3, 3)), RNG.normal(size=5)
    x = RNG.normal(loc=4.0, size=(30, 3, 5, 5))
    y, patch = _padded_conv(x, w, stride=2)
    float_mean = (y + b[None, :, None, None]).mean(axis=(0, 2, 3))
    q = quantized_weight(w, False)
    rounded, _ = _padded_conv(x, q, stride=2)

    assert np.allclose(mean_patch(x.mean(axis=0), (3, 3), (2, 2), padding=((1, 1), (1, 1))), patch)
    exact = corrected_bias(w, b, patch, "conv", False)
    assert np.allclose((rounded + exact[None, :, None, None]).mean(axis=(0, 2, 3)), float_mean, atol=1e-5)
    approximate = corrected_bias(w, b, x.mean(axis=(0, 2, 3)), "conv", False)
    assert np.abs((rounded + approximate[None, :, None, None]).mean(axis=(0, 2, 3)) - float_mean).max() > 1e-3


@pytest.mark.parametrize("mode, numpy_mode", [("zeros", "constant"), ("reflect", "reflect"),
                                               ("replicate", "edge"), ("circular", "wrap")])
def test_the_mean_patch_of_a_dilated_convolution_is_the_mean_of_its_patches(mode, numpy_mode):
    x = RNG.normal(loc=2.0, size=(10, 2, 9, 7))
    padding = ((2, 1), same_padding(7, 3, 2, 2))
    padded = np.pad(x, ((0, 0), (0, 0)) + padding, mode=numpy_mode)
    patches = np.stack([np.stack([padded[:, :, r:r + 5:2, c:c + 5:2] for c in range(0, padded.shape[3] - 4, 2)], -1)
                        for r in range(0, padded.shape[2] - 4, 2)], -2)  # (n, in, kh, kw, oh, ow), dilation 2
    assert patches.shape[2:4] == (3, 3)
    assert np.allclose(mean_patch(x.mean(axis=0), (3, 3), (2, 2), (2, 2), padding, mode), patches.mean(axis=(0, 4, 5)))


def test_same_padding_is_tensorflows():
    assert same_padding(5, 3, 1, 1) == (1, 1) and same_padding(6, 3, 2, 1) == (0, 1)
    assert same_padding(7, 3, 2, 2) == (2, 2) and same_padding(4, 1, 2, 1) == (0, 0)


def test_a_layer_without_bias_gets_one_and_the_types_are_kept():
    w = _outlier_weight((3, 4)).astype(np.float32)
    mean = np.full(4, 2.0)
    corrected = corrected_bias(w, None, mean, "dense", per_channel=False)
    assert corrected.dtype == np.float32 and corrected.shape == (3,)
    assert np.allclose(corrected, -expected_shift(w, mean, "dense", False), atol=1e-6)
    assert corrected_bias(w, np.zeros(3, np.float16), mean, "dense", False).dtype == np.float16


def test_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="kind"):
        expected_shift(np.ones((2, 3)), np.ones(3), "lstm", True)
    with pytest.raises(ValueError, match="3 input features"):
        expected_shift(np.ones((2, 4)), np.ones(3), "dense", True)
    with pytest.raises(ValueError, match="5 input channels"):
        expected_shift(np.ones((4, 2, 3, 3)), np.ones(5), "conv", True)
    with pytest.raises(ValueError, match="one input channel"):
        expected_shift(np.ones((4, 2, 3, 3)), np.ones(4), "depthwise", True)
    with pytest.raises(ValueError, match="not \\(4, 2, 2\\)"):
        expected_shift(np.ones((4, 2, 3, 3)), np.ones((4, 2, 2)), "conv", True)
    with pytest.raises(ValueError, match="bias of 2"):
        corrected_bias(np.ones((3, 4)), np.ones(2), np.ones(4), "dense", True)

