"""MobileNetV2 for the torch zoo, with torchvision's module layout and state_dict key names.

torchvision is not a dependency (its wheels must match the installed torch build), so the network
is written here, module for module as `torchvision.models.mobilenet_v2(width_mult=w)`:
`features.0` (3x3 stride-2 conv, BN, ReLU6), `features.1..17` (inverted residual blocks, each a
`conv` Sequential), `features.18` (1x1 conv to 1280·max(1, w) channels) and `classifier.1` (the
output Linear after `classifier.0`, a Dropout). A state_dict saved from torchvision's model
therefore loads into this one as it is (`teacher.build.weights`), and the reverse.

Channel counts use torchvision's rounding (`make_divisible(c·w, 8)`), which gives the same
channels as Keras' `MobileNetV2(alpha=w)`, so the parameter count equals Keras' `count_params`
at the same width and head (BatchNorm running statistics counted, as `train.param_count` does).
Differences from Keras that do not change the count: BatchNorm epsilon is torchvision's 1e-5 (so
its pretrained statistics mean what they meant there), not Keras' 1e-3; stride-2 3x3 convs pad one
pixel on every side where Keras pads (0, 1).

An optional head (`edgekit.zoo.Head`) puts `dense` ReLU layers before the dropout, inside
`classifier`; with no dense layers the keys are exactly torchvision's.
"""

from __future__ import annotations

from edgekit.zoo import Head
from edgekit.backends.torch.compat import nn

STEM = 32
LAST = 1280
# (expansion t, output channels c, repeats n, first stride s), as in the paper and torchvision
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's (and Keras') channel rounding: to a multiple of `divisor`, at most 10% down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias), BatchNorm2d, ReLU6: torchvision's `Conv2dNormActivation` keys `0`, `1`."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=False))


class InvertedResidual(nn.Module):
    """Expand (1x1, skipped when t = 1), depthwise 3x3, project (1x1, linear); the input is added
    back when the shapes allow (stride 1, same channels). `use_res_connect` is fixed when built,
    so `forward` has no data-dependent control flow and traces with torch.export."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU6(cin, hidden, 1)] if expand_ratio != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


def features(in_channels: int, width: float) -> tuple[nn.Sequential, int]:
    """The base (`features`) and its output channels."""
    channels = make_divisible(STEM * width)
    last = make_divisible(LAST * max(1.0, width))
    blocks: list[nn.Module] = [ConvBNReLU6(in_channels, channels, 3, 2)]
    for t, c, n, s in SETTINGS:
        out = make_divisible(c * width)
        for i in range(n):
            blocks.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
            channels = out
    blocks.append(ConvBNReLU6(channels, last, 1))
    return nn.Sequential(*blocks), last


def classifier(cin: int, outputs: int, head: Head) -> nn.Sequential:
    """`dense` ReLU layers, Dropout, the output Linear (torchvision's `classifier.0`, `.1` without dense)."""
    layers: list[nn.Module] = []
    for units in head.dense:
        layers += [nn.Linear(cin, units), nn.ReLU()]
        cin = units
    return nn.Sequential(*layers, nn.Dropout(head.dropout), nn.Linear(cin, outputs))


def mobilenet_v2(input_shape, width, outputs, head: Head | None = None):
    """The zoo layers: `features`, global average pool, flatten, `classifier` (NCHW images)."""
    base, channels = features(int(input_shape[-1]), width)
    return [("features", base), ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
            ("classifier", classifier(channels, outputs, head or Head()))]


__all__ = ["InvertedResidual", "classifier", "features", "make_divisible", "mobilenet_v2"]
