"""The built-in architectures (edgekit.zoo) as plain torch modules, twins of the Keras zoo.

Each arch has the same layers, widths (`channels(base, width)`), pooling and stride rules as
`backends/keras/zoo.py`, so a Keras and a torch model of one arch have the same parameter count
(counting BatchNorm running mean/variance, as Keras' `count_params` does; see `train.param_count`).
Differences that do not change the count: BatchNorm uses Keras' epsilon (1e-3) but torch's default
momentum (0.1, i.e. Keras momentum 0.9), so short fine-tunes settle their running statistics; the
flatten of cnn_small runs over NCHW (c, h, w) rather than NHWC; stride-2 3x3 convs pad 1 on each
side where TF's "same" pads (0, 1) — same output size, the kernel sees a shifted window.

Models take NCHW images, or `(n, steps, features)` for 2-D samples (conv archs add the channel axis
with `nn.Unflatten`). Shapes are worked out when building, so `forward` has no data-dependent
Python control flow and torch.export, ONNX (dynamo), LiteRT-Torch and Torch-Pruning can trace it.
Outputs are logits (no softmax), or the regression values.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from edgekit.errors import InputError
from edgekit.zoo import ARCHITECTURES, ENCODER_BLOCKS, HEADS, Head, channels, check_base_input, model_width
from edgekit.backends.torch import transfer
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.mobilenet_v2 import mobilenet_v2

BN_EPS = 1e-3  # Keras BatchNormalization's default epsilon


class ZooNet(nn.Sequential):
    """A zoo model: an `nn.Sequential` of named blocks, with its arch and width for reports."""

    def __init__(self, blocks: "OrderedDict[str, nn.Module]", arch: str = "", width: float = 1.0,
                 head: Head | None = None):
        super().__init__(blocks)
        self.arch = arch
        self.width = float(width)
        # a base arch's head (edgekit.zoo.Head), for the stage cache to rebuild it; not `head`, the
        # name of the other archs' output layer
        self.head_config = head


class Residual(nn.Module):
    """ResNet's `relu(body(x) + shortcut(x))`; the shortcut is `nn.Identity` or a 1x1 conv + BN."""

    def __init__(self, body: nn.Module, shortcut: nn.Module):
        super().__init__()
        self.body = body
        self.shortcut = shortcut
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class Tokens(nn.Module):
    """NCHW images `(n, c, h, w)` as `(n, h, w·c)`: h rows of (w, c) features, Keras' row order."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1).flatten(2)


class PositionEmbedding(nn.Module):
    """`x + embedding`, a trainable `(length, dim)` embedding (Keras zoo's `PositionEmbedding`)."""

    def __init__(self, length: int, dim: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.randn(1, length, dim) * 0.02)

    def forward(self, x):
        return x + self.embedding


class TokenMean(nn.Module):
    """The mean over tokens, `(n, t, d) -> (n, d)` (Keras' GlobalAveragePooling1D)."""

    def forward(self, x):
        return x.mean(dim=1)


class LastStep(nn.Module):
    """A batch-first `nn.LSTM`/`nn.GRU` whose output is its last step's, `(n, t, f) -> (n, units)`
    (Keras' recurrent layers with `return_sequences=False`)."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        out, _ = self.rnn(x)
        return out[:, -1]


@dataclass
class _Shape:
    """The (channels, height, width) of the feature map while a model is being built."""

    c: int
    h: int
    w: int

    def pool(self) -> "_Shape":
        return _Shape(self.c, self.h // 2, self.w // 2)

    def strided(self, stride: int, c: int | None = None) -> "_Shape":
        # 3x3, padding 1 (or 1x1, padding 0): ceil(n / stride), as Keras padding="same"
        return _Shape(self.c if c is None else c, -(-self.h // stride), -(-self.w // stride))


def _room_to_pool(s: _Shape, min_side: int = 4) -> bool:
    return min(s.h, s.w) >= min_side


def _stride_for(s: _Shape) -> int:
    return 2 if min(s.h, s.w) >= 8 else 1


def _image_start(input_shape: tuple[int, ...], arch: str) -> tuple[list, _Shape]:
    """Layers that turn the model input into NCHW, and the resulting shape."""
    if len(input_shape) == 3:
        h, w, c = input_shape
        return [], _Shape(c, h, w)
    if len(input_shape) == 2:
        steps, features = input_shape
        return [("to_image", nn.Unflatten(1, (1, steps)))], _Shape(1, steps, features)
    raise InputError(f"arch {arch} needs samples of shape (height, width, channels) or (steps, features), "
                     f"not {list(input_shape)}; use arch: mlp for flat feature vectors.")


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS),
        nn.ReLU(),
    )


def _separable(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
        nn.BatchNorm2d(cin, eps=BN_EPS),
        nn.ReLU(),
        *_conv_bn(cin, cout, 1),
    )


def _global_pool() -> list:
    return [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten())]


def mlp(input_shape, width, outputs):
    features = 1
    for d in input_shape:
        features *= int(d)
    h1, h2 = channels(128, width), channels(64, width)
    return [("flatten", nn.Flatten()),
            ("dense1", nn.Linear(features, h1)), ("relu1", nn.ReLU()),
            ("dense2", nn.Linear(h1, h2)), ("relu2", nn.ReLU()),
            ("head", nn.Linear(h2, outputs))]


def cnn_tiny(input_shape, width, outputs):
    layers, s = _image_start(input_shape, "cnn_tiny")
    c1, c2 = channels(8, width), channels(16, width)
    layers += [("conv1", nn.Conv2d(s.c, c1, 3, padding=1)), ("relu1", nn.ReLU())]
    s = _Shape(c1, s.h, s.w)
    if _room_to_pool(s):
        layers.append(("maxpool", nn.MaxPool2d(2)))
    layers += [("conv2", nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU()),
               *_global_pool(), ("head", nn.Linear(c2, outputs))]
    return layers


def cnn_small(input_shape, width, outputs):
    layers, s = _image_start(input_shape, "cnn_small")
    c1, c2, d = channels(32, width), channels(64, width), channels(128, width)
    layers += [("conv1", nn.Conv2d(s.c, c1, 3, padding=1)), ("relu1", nn.ReLU()),
               ("conv2", nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU())]
    s = _Shape(c2, s.h, s.w)
    if _room_to_pool(s):
        layers.append(("maxpool", nn.MaxPool2d(2)))
        s = s.pool()
    layers += [("flatten", nn.Flatten()),  # NCHW order: channel pruning removes whole (h*w) runs
               ("dense1", nn.Linear(s.c * s.h * s.w, d)), ("relu3", nn.ReLU()),
               ("head", nn.Linear(d, outputs))]
    return layers


def ds_cnn(input_shape, width, outputs):
    layers, s = _image_start(input_shape, "ds_cnn")
    c = channels(64, width)
    stride = _stride_for(s)
    layers.append(("stem", _conv_bn(s.c, c, 3, stride)))
    for i in range(4):
        layers.append((f"separable{i + 1}", _separable(c, c)))
    return layers + [*_global_pool(), ("head", nn.Linear(c, outputs))]


def resnet8(input_shape, width, outputs):
    layers, s = _image_start(input_shape, "resnet8")
    c = channels(16, width)
    layers.append(("stem", _conv_bn(s.c, c, 3)))
    s = _Shape(c, s.h, s.w)
    for stage, base in enumerate((16, 32, 64)):
        filters = channels(base, width)
        stride = _stride_for(s) if stage > 0 else 1
        body = nn.Sequential(*_conv_bn(s.c, filters, 3, stride),
                             nn.Conv2d(filters, filters, 3, padding=1, bias=False),
                             nn.BatchNorm2d(filters, eps=BN_EPS))
        shortcut: nn.Module = nn.Identity()
        if stride != 1 or s.c != filters:
            shortcut = nn.Sequential(nn.Conv2d(s.c, filters, 1, stride=stride, bias=False),
                                     nn.BatchNorm2d(filters, eps=BN_EPS))
        layers.append((f"stage{stage + 1}", Residual(body, shortcut)))
        s = s.strided(stride, filters)
    return layers + [*_global_pool(), ("head", nn.Linear(s.c, outputs))]


def mobilenet_v1(input_shape, width, outputs):
    layers, s = _image_start(input_shape, "mobilenet_v1")
    c = channels(32, width)
    stride = _stride_for(s)
    layers.append(("stem", _conv_bn(s.c, c, 3, stride)))
    s = s.strided(stride, c)
    blocks = ((64, False), (128, True), (128, False), (256, True), (256, False), (512, True))
    for i, (base, downsample) in enumerate(blocks):
        filters = channels(base, width)
        stride = _stride_for(s) if downsample else 1
        layers.append((f"separable{i + 1}", _separable(s.c, filters, stride)))
        s = s.strided(stride, filters)
    return layers + [*_global_pool(), ("head", nn.Linear(s.c, outputs))]


def _sequence_start(input_shape: tuple[int, ...], arch: str) -> tuple[list, int, int]:
    """Layers that turn the model input into `(n, steps, features)`, and (steps, features)."""
    if len(input_shape) == 3:
        h, w, c = input_shape
        return [("tokens", Tokens())], h, w * c
    if len(input_shape) == 2:
        return [], input_shape[0], input_shape[1]
    raise InputError(f"arch {arch} needs samples of shape (height, width, channels) or (steps, features), "
                     f"not {list(input_shape)}; use arch: mlp for flat feature vectors.")


def transformer(input_shape, width, outputs):
    layers, steps, features = _sequence_start(input_shape, "transformer")
    d = model_width(width)
    layers += [("project", nn.Linear(features, d)), ("position", PositionEmbedding(steps, d))]
    for i in range(ENCODER_BLOCKS):
        layers.append((f"encoder{i + 1}", nn.TransformerEncoderLayer(
            d, HEADS, dim_feedforward=2 * d, dropout=0.0, activation="gelu", layer_norm_eps=1e-3,
            batch_first=True)))
    return layers + [("pool", TokenMean()), ("head", nn.Linear(d, outputs))]


def lstm(input_shape, width, outputs):
    layers, _, features = _sequence_start(input_shape, "lstm")
    units = channels(64, width)
    return layers + [("lstm", LastStep(nn.LSTM(features, units, batch_first=True))),
                     ("head", nn.Linear(units, outputs))]


def gru(input_shape, width, outputs):
    layers, _, features = _sequence_start(input_shape, "gru")
    units = channels(64, width)
    return layers + [("gru", LastStep(nn.GRU(features, units, batch_first=True))),
                     ("head", nn.Linear(units, outputs))]


BUILDERS = {
    "mobilenet_v2": mobilenet_v2,  # torchvision's layout and key names: backends/torch/mobilenet_v2.py
    "mlp": mlp,
    "cnn_tiny": cnn_tiny,
    "cnn_small": cnn_small,
    "ds_cnn": ds_cnn,
    "resnet8": resnet8,
    "mobilenet_v1": mobilenet_v1,
    "transformer": transformer,
    "lstm": lstm,
    "gru": gru,
}
assert set(BUILDERS) | set(transfer.TORCHVISION) == set(ARCHITECTURES)


def build(arch: str, width: float, input_shape: tuple[int, ...], outputs: int, task: str = "classification",
          head: Head | None = None, weights=None) -> nn.Module:
    """A new `ZooNet` for channels-last per-sample `input_shape` ((h, w, c) or (steps, features)).

    The module takes NCHW images (or `(n, steps, features)`) and returns `(n, outputs)` logits for
    classification, or `(n, outputs)` values for regression (`task` changes nothing else). A base
    arch (edgekit.zoo.BASES) takes a `head` and a state_dict file of pretrained base `weights`;
    `resnet50` and `efficientnet_b0` come from torchvision (`transfer.TORCHVISION`).
    """
    if arch not in ARCHITECTURES:
        raise InputError(f"unknown arch {arch!r}; the zoo has {', '.join(ARCHITECTURES)}.")
    shape = tuple(int(d) for d in input_shape)
    check_base_input(arch, shape, weights is not None, where=f"arch {arch}")
    options = {"head": head} if head is not None else {}
    if arch in transfer.TORCHVISION:
        model = transfer.build_torchvision(arch, width, shape, int(outputs), head)
    else:
        model = ZooNet(OrderedDict(BUILDERS[arch](shape, width, int(outputs), **options)), arch=arch, width=width,
                       head=head)
    if weights is not None:
        transfer.load_base_weights(model, weights, arch, width)
    return model.eval()


__all__ = ["BUILDERS", "LastStep", "PositionEmbedding", "Residual", "TokenMean", "Tokens", "ZooNet", "build"]
