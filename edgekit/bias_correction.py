"""Bias correction: give back to each layer's bias the mean that int8 weight rounding takes away.

The int8 exporters store a weight symmetrically, per output channel (or per tensor when the plan
says so): scale = max|w| / 127, values round(w / scale) clipped to [-127, 127]. The rounding error
W_q - W is not zero on average over an input: it shifts each output's expected value by
(W_q - W) E[x]. A layer whose inputs have a large mean (after a ReLU, they all do) and whose
rounding errors happen not to cancel moves its outputs' mean, and the layers after it see a
biased input. Subtracting that shift from the float bias makes the int8 file's expected outputs
those of the float model (Nagel et al., "Data-Free Quantization Through Weight Equalization and
Bias Correction", ICCV 2019, section 4.2, in its data-driven form: E[x] is measured on
calibration samples, as AIMET's "empirical" bias correction does). The float model's function
changes by -(W_q - W) E[x] per output, which is as small as the rounding error itself.

This module is the arithmetic on numpy arrays, whatever the framework; each backend measures its
layers' input means and reads and writes their biases (`Backend.correct_bias`).

    >>> import numpy as np
    >>> w = np.array([[1.0, 0.3], [0.5, -0.2]])   # outputs x inputs; 0.3 does not round exactly
    >>> np.round(quantized_weight(w, per_channel=True), 4).tolist()
    [[1.0, 0.2992], [0.5, -0.2008]]
    >>> x_mean = np.array([2.0, 10.0])
    >>> b = corrected_bias(w, None, x_mean, "dense", per_channel=True)
    >>> bool(np.allclose(quantized_weight(w, True) @ x_mean + b, w @ x_mean))
    True
"""

from __future__ import annotations

from typing import Optional

import numpy as np

LEVELS = 127  # symmetric int8: [-127, 127], zero point 0
KINDS = ("dense", "conv", "depthwise")


def quantized_weight(w_out: np.ndarray, per_channel: bool) -> np.ndarray:
    """`w_out` (output channels first) as an int8 file holds it, dequantized: scale = max|w| / 127
    per output channel (per tensor when `per_channel` is false), values rounded (half to even, as
    ONNX Runtime's quantizer; ties are vanishingly rare in trained weights) and clipped to
    [-127, 127]. An all-zero channel stays zero."""
    w = np.asarray(w_out, dtype=np.float64)
    flat = w.reshape(w.shape[0], -1) if w.ndim > 1 else w.reshape(1, -1)
    largest = np.abs(flat).max(axis=1, keepdims=True) if per_channel else np.abs(flat).max(keepdims=True)
    scale = np.where(largest > 0, largest / LEVELS, 1.0)
    dequantized = np.clip(np.round(flat / scale), -LEVELS, LEVELS) * scale
    return dequantized.reshape(w.shape).astype(np.asarray(w_out).dtype)


def expected_shift(w_out: np.ndarray, input_mean: np.ndarray, kind: str, per_channel: bool) -> np.ndarray:
    """(W_q - W) E[x]: how much int8 rounding of `w_out` moves each output's mean (one per output).

    `kind` says how `w_out` reads its input, whose mean is `input_mean`:
    - "dense": W is (outputs, inputs), `input_mean` (inputs,): the input's mean over every axis but
      its features;
    - "conv": W is (outputs, inputs / groups, kh, kw), torch's layout; groups = inputs / W.shape[1]
      (1: an ordinary convolution), output o reading the input channels of group
      o // (outputs / groups). `input_mean` is either (inputs,), each channel's mean, which every
      kernel position is taken to see (the shift sums the error over the kernel positions), or
      (inputs, kh, kw), the mean patch: what each kernel position reads on average over the output
      positions, padding included, which is exact for any padding, stride and dilation (a padded
      border reads zeros, and on a small feature map the borders are much of it);
    - "depthwise": a conv with one input channel per group (W is (channels x multiplier, 1, kh, kw),
      output o reading channel o // multiplier), as Keras' DepthwiseConv2D and a torch Conv2d with
      groups = in_channels both are."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    w = np.asarray(w_out, dtype=np.float64)
    error = quantized_weight(w, per_channel).astype(np.float64) - w
    mean = np.asarray(input_mean, dtype=np.float64)
    if kind == "dense":
        mean = mean.reshape(-1)
        if w.ndim != 2 or w.shape[1] != len(mean):
            raise ValueError(f"a dense weight of shape {w.shape} cannot read {len(mean)} input features")
        return error @ mean
    if w.ndim != 4:
        raise ValueError(f"a convolution's weight has 4 axes (outputs, inputs / groups, kh, kw), not {w.shape}")
    per_group = w.shape[1]
    if kind == "depthwise" and per_group != 1:
        raise ValueError(f"a depthwise weight reads one input channel per output, not {per_group}")
    if mean.ndim == 1:
        mean = np.broadcast_to(mean[:, None, None], (len(mean),) + w.shape[2:])
    if mean.ndim != 3 or mean.shape[1:] != w.shape[2:]:
        raise ValueError(f"a convolution's input mean is (inputs,) or (inputs, kh, kw) = (inputs, {w.shape[2]}, "
                         f"{w.shape[3]}), not {mean.shape}")
    groups, rest = divmod(len(mean), per_group)
    if rest or not groups or w.shape[0] % groups:
        raise ValueError(f"a convolution's weight of shape {w.shape} cannot read {len(mean)} input channels")
    group_of_output = np.arange(w.shape[0]) // (w.shape[0] // groups)
    means_read = mean.reshape((groups, per_group) + w.shape[2:])[group_of_output]  # like w: (outputs, ...)
    return (error * means_read).sum(axis=(1, 2, 3))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) zeros TensorFlow's and torch's "same" padding add on an axis of `size`: the
    total that makes ceil(size / stride) outputs, the odd one after."""
    outputs = -(-size // stride)
    total = max((outputs - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


#: torch's padding modes as numpy's `np.pad` modes: padding the mean map is padding every sample
PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def mean_patch(mean_map: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1),
               dilation: tuple[int, int] = (1, 1), padding: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0)),
               mode: str = "zeros") -> np.ndarray:
    """The mean patch (channels, kh, kw) a convolution reads: for each kernel position, the mean of
    what it sees over the output positions, from `mean_map` (channels, height, width), the layer's
    input averaged over the samples alone. A patch is linear in the input, so the mean of the patches
    is the patch of the mean: padded the same way (`mode`: torch's padding_mode, zeros by default),
    strided and dilated as the layer does."""
    kh, kw = kernel
    padded = np.pad(np.asarray(mean_map, dtype=np.float64), ((0, 0),) + tuple(map(tuple, padding)),
                    mode=PAD_MODES[mode])
    rows = (padded.shape[1] - (kh - 1) * dilation[0] - 1) // stride[0] + 1
    cols = (padded.shape[2] - (kw - 1) * dilation[1] - 1) // stride[1] + 1
    if rows < 1 or cols < 1:
        raise ValueError(f"a {kh}x{kw} kernel (dilation {dilation}) does not fit a padded map of {padded.shape[1:]}")
    patch = np.empty((padded.shape[0], kh, kw))
    for a in range(kh):
        for b in range(kw):
            top, left = a * dilation[0], b * dilation[1]
            seen = padded[:, top:top + (rows - 1) * stride[0] + 1:stride[0],
                          left:left + (cols - 1) * stride[1] + 1:stride[1]]
            patch[:, a, b] = seen.mean(axis=(1, 2))
    return patch


def corrected_bias(w_out: np.ndarray, bias: Optional[np.ndarray], input_mean: np.ndarray, kind: str,
                   per_channel: bool) -> np.ndarray:
    """A new bias: `bias` (zeros when None) minus `expected_shift(w_out, input_mean, kind,
    per_channel)`, so that with the int8-rounded weight the layer's mean outputs are the float
    layer's. The inputs are not modified."""
    shift = expected_shift(w_out, input_mean, kind, per_channel)
    dtype = np.asarray(bias).dtype if bias is not None else np.asarray(w_out).dtype
    base = np.zeros(len(shift)) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if len(base) != len(shift):
        raise ValueError(f"a bias of {len(base)} values for a weight of {len(shift)} outputs")
    return (base - shift).astype(dtype)
