"""Bias correction of a torch model (`edgekit.bias_correction` has the rule and says why).

The layers corrected are the nn.Conv2d (grouped and depthwise ones included) and nn.Linear modules
with a bias, wherever they sit in the module tree, and, in a torch.export teacher's GraphModule,
the `aten.conv2d` / `aten.linear` calls on a plain module's `weight` and `bias` (as `equalize`
finds them). Each one's input is measured on the float model, in eval mode, over the calibration
samples: by forward pre-hooks on the modules, and for a GraphModule's calls by running its graph
with a torch.fx Interpreter. A Linear reads its input's mean per feature, a convolution its mean
patch (`edgekit.bias_correction.mean_patch`: padding, padding_mode, stride and dilation included).
Left as they are:
- a layer without a bias (`bias=False`, usually before a BatchNorm): adding a bias Parameter would
  change the module's state_dict, which the stage cache loads strictly into a module rebuilt from
  the recipe;
- a TorchScript teacher (no hooks, no graph to interpret: returned as it is, no records);
- a PT2E (QAT) graph's convolutions, whose weights reach them through fake-quantize nodes: their
  rounding is the quantizer's, not the rule's.
A module called several times is corrected for the mean of all the inputs it sees. With
per-tensor weights, a BatchNorm the exporter folds into a convolution changes its rounding and the
correction is then approximate (per channel, folding scales each channel's correction with it).
The model is deep-copied first: the input model is never changed.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.layout import to_nchw
from edgekit.backends.torch.train import clone, set_mode, static_batch
from edgekit.bias_correction import corrected_bias, mean_patch, same_padding

BATCH = 64


def _kind(module) -> str | None:
    """The rule's kind for a module it corrects (exact classes: QAT and other subclasses keep their own
    forward), else None."""
    if getattr(module, "bias", None) is None:
        return None
    if type(module) is nn.Linear:
        return "dense"
    if type(module) is nn.Conv2d:
        return "depthwise" if module.weight.shape[1] == 1 and module.groups > 1 else "conv"
    return None


class _Layer:
    """One layer to correct: its module (which holds `weight` and `bias`), how it convolves, and the
    sum of its inputs over the samples seen so far (not over positions)."""

    def __init__(self, module, kind, stride=(1, 1), padding=(0, 0), dilation=(1, 1), padding_mode="zeros"):
        self.module, self.kind = module, kind
        self.stride, self.padding, self.dilation, self.padding_mode = stride, padding, dilation, padding_mode
        self.sum, self.count = 0.0, 0

    def add(self, x, real: int) -> None:
        values = x[:real].detach().double().cpu().numpy()
        self.sum = self.sum + values.sum(axis=0)
        self.count += len(values)

    def mean(self) -> np.ndarray:
        """What the rule reads of the input's mean: per feature (Linear) or the mean patch (Conv2d)."""
        mean_input = self.sum / self.count
        if self.kind == "dense":
            return np.moveaxis(mean_input, -1, 0).reshape(mean_input.shape[-1], -1).mean(axis=1)
        kernel = tuple(self.module.weight.shape[2:])
        if isinstance(self.padding, str):  # "same" (stride 1) or "valid"
            padding = [same_padding(size, k, 1, d) if self.padding == "same" else (0, 0)
                       for size, k, d in zip(mean_input.shape[1:], kernel, self.dilation)]
        else:
            padding = [(p, p) for p in self.padding]
        return mean_patch(mean_input, kernel, tuple(self.stride), tuple(self.dilation), tuple(padding),
                          self.padding_mode)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _padding(value):
    """A convolution's padding as _Layer takes it: "same" / "valid", or (rows, columns)."""
    return value if isinstance(value, str) else _pair(value)


def _graph_calls(model) -> dict:
    """{fx node name: (module path, _Layer)} for the conv / linear calls of a GraphModule on a module's
    own `weight` and `bias` (a torch.export program's layers)."""
    import torch.nn.functional as F

    aten = torch.ops.aten
    convolutions = {aten.conv2d.default, aten.conv2d.padding, F.conv2d}
    linears = {aten.linear.default, F.linear}
    modules = dict(model.named_modules())
    found = {}
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in convolutions | linears or len(node.args) < 2:
            continue
        weight = node.args[1]
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        if getattr(weight, "op", None) != "get_attr" or getattr(bias, "op", None) != "get_attr":
            continue
        path = str(weight.target).rpartition(".")[0]
        module = modules.get(path)
        if not str(weight.target).endswith(".weight") or str(bias.target) != f"{path}.bias" or module is None:
            continue
        parameter = getattr(module, "weight", None)
        if node.target in linears:
            if isinstance(parameter, torch.Tensor) and parameter.dim() == 2:
                found[node.name] = (path, _Layer(module, "dense"))
            continue
        if not isinstance(parameter, torch.Tensor) or parameter.dim() != 4:
            continue
        stride, padding, dilation, groups = (node.args[i] if len(node.args) > i else node.kwargs.get(key, default)
                                             for i, key, default in ((3, "stride", 1), (4, "padding", 0),
                                                                     (5, "dilation", 1), (6, "groups", 1)))
        kind = "depthwise" if parameter.shape[1] == 1 and groups > 1 else "conv"
        found[node.name] = (path, _Layer(module, kind, _pair(stride), _padding(padding), _pair(dilation)))
    return found


class _Recorder:
    """Runs the model over the samples, handing each layer its inputs."""

    def __init__(self, model):
        self.model, self.real = model, 0
        self.layers = {}  # module path -> _Layer
        self.calls = {}  # fx node name -> _Layer
        for path, module in model.named_modules():
            kind = _kind(module)
            if path and kind == "dense":
                self.layers[path] = _Layer(module, kind)
            elif path and kind:
                self.layers[path] = _Layer(module, kind, _pair(module.stride), _padding(module.padding),
                                           _pair(module.dilation), module.padding_mode)
        if isinstance(model, torch.fx.GraphModule):
            for name, (path, layer) in _graph_calls(model).items():
                self.calls[name] = self.layers.setdefault(path, layer)

    def run(self, samples: np.ndarray) -> None:
        handles = [layer.module.register_forward_pre_hook(self._hook(layer))
                   for layer in self.layers.values() if layer not in self.calls.values()]
        fixed = static_batch(self.model)
        size = fixed or BATCH
        try:
            with torch.no_grad():
                for start in range(0, len(samples), size):
                    chunk = to_nchw(np.asarray(samples[start:start + size], dtype=np.float32))
                    self.real = len(chunk)
                    if fixed and self.real < fixed:  # pad to the exported batch size; the padding is not counted
                        chunk = np.concatenate([chunk, np.zeros((fixed - self.real,) + chunk.shape[1:], np.float32)])
                    batch = torch.from_numpy(chunk)
                    if self.calls:
                        _Interpreter(self).run(batch)
                    else:
                        self.model(batch)
        finally:
            for handle in handles:
                handle.remove()

    def _hook(self, layer):
        def hook(module, args):
            if args:  # an input passed by keyword is not measured (the layer then keeps its bias)
                layer.add(args[0], self.real)
        return hook


class _Interpreter(torch.fx.Interpreter):
    """Runs a GraphModule node by node, handing each recorded call's input to its layer."""

    def __init__(self, recorder: _Recorder):
        super().__init__(recorder.model)
        self.recorder = recorder

    def run_node(self, node):
        layer = self.recorder.calls.get(node.name)
        if layer is not None:
            layer.add(self.env[node.args[0]], self.recorder.real)
        return super().run_node(node)


def correct_bias(model, samples: np.ndarray, per_channel: bool = True):
    """(a corrected copy of `model`, one record per layer: its module path and the largest shift of an
    output's mean the correction removes), or (`model`, []) when no layer applies."""
    if isinstance(model, torch.jit.ScriptModule) or not len(samples):
        return model, []
    copy = clone(model)
    recorder = _Recorder(copy)
    if not recorder.layers:
        return model, []
    was_training = bool(getattr(model, "training", False))
    set_mode(copy, False)
    try:
        recorder.run(samples)
    finally:
        set_mode(copy, was_training)
    records = []
    with torch.no_grad():
        for path, layer in recorder.layers.items():
            if not layer.count:  # a module the forward pass never reached
                continue
            bias = layer.module.bias
            old = bias.detach().cpu().numpy().copy()  # the numpy view would follow the copy_ below
            new = corrected_bias(layer.module.weight.detach().cpu().numpy(), old, layer.mean(), layer.kind, per_channel)
            bias.copy_(torch.from_numpy(np.ascontiguousarray(new)).to(bias.dtype))
            records.append({"layer": path, "largest_shift": float(np.abs(new - old).max())})
    return (copy, records) if records else (model, [])
