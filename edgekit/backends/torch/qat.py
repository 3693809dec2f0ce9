"""Quantization-aware training for torch with PT2E (torch.export + torchao), for LiteRT-Torch.

Steps (torchao's PT2E QAT flow):
1. `torch.export.export(model, (example,), dynamic_shapes=batch)` captures the float model as a
   training-IR graph (`.module()`); the batch dimension stays dynamic so training batches of any size run.
2. `prepare_qat_pt2e(graph, quantizer)` with LiteRT-Torch's `PT2EQuantizer` (symmetric int8,
   per-channel weights, QAT) inserts fake-quant modules (and simulates conv-BN folding).
3. The prepared graph is fine-tuned with `train.fit_module`. Its `.train()`/`.eval()` raise after
   prepare, so `allow_train_eval` installs switches that rewrite the graph's batch-norm and dropout
   ops between training and inference forms (torchao's `move_exported_model_to_train/eval`, done
   only for the op families present).
4. `convert_pt2e(prepared, fold_quantize=False)` gives a graph of quantize/dequantize ops that
   LiteRT-Torch lowers to a full-integer .tflite; the artifact carries the quantizer
   (`artifact.qat.quantizer`) for the .tflite writer.

The fine-tuned float weights (same parameter names in the prepared graph) are copied into a clone
of the input module, `artifact.qat.float_model`, which the ONNX exporter quantizes. When the input
was pruned, its zeros are re-applied after every step (sparsity-preserving QAT, like TF-MOT's PQAT).

Under mixed precision the graph's convs and matmuls compute in 16 bits (autocast applies to the
aten ops a graph calls as to a module's), while its fake-quant and observer modules take float32
inputs (`fake_quant_in_float32`): the fused fake-quant ops accept nothing else.

Compatibility: LiteRT-Torch 0.10's conv-BN annotator hands torchao 0.18 a plain function where
`torch.export` now needs a module; `_patch_litert_pattern_export` wraps it in torchao's
`WrapperModule` (the same fix torchao's own XNNPACK quantizer uses). torchao's conv-BN fusion and
folding are told to skip conv kinds absent from the graph (`_patch_fold_only_present_convs`), which
cuts their time about fourfold for BatchNorm models.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from edgekit.artifact import Artifact, QuantizationAware
from edgekit.errors import InputError
from edgekit.backends.torch import train
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.layout import to_nchw
from edgekit.quiet import native_stderr_silenced

SCHEME = "PT2E QAT (symmetric int8, per-channel weights)"


def _patch_litert_pattern_export() -> None:
    """Let LiteRT-Torch's annotators pass pattern functions to torchao's pattern exporter (idempotent)."""
    with native_stderr_silenced():  # LiteRT-Torch imports TensorFlow and torchao, whose C++ cores log on fd 2
        from litert_torch.quantize import pt2e_quantizer_utils as utils
        from torchao.quantization.pt2e.export_utils import WrapperModule

    original = utils._get_aten_graph_module_for_pattern
    if getattr(original, "edgekit_wrapped", False):
        return

    def wrapped(pattern, example_inputs, is_cuda=False, **kwargs):
        if not isinstance(pattern, torch.nn.Module):
            pattern = WrapperModule(pattern)
        return original(pattern, example_inputs, is_cuda, **kwargs)

    wrapped.edgekit_wrapped = True
    utils._get_aten_graph_module_for_pattern = wrapped


def _op_name(node) -> str:
    """`conv2d` for a node calling `aten.conv2d.default`."""
    parts = str(node.target).split(".")
    return parts[1] if node.op == "call_function" and len(parts) >= 3 and parts[0] == "aten" else ""


def _patch_fold_only_present_convs() -> None:
    """Let torchao's conv-BN fusion (prepare) and folding (convert) skip conv kinds the graph lacks.

    For every model with a BatchNorm they otherwise export pattern pairs for each conv kind
    (conv1d, conv2d, conv_transpose1d/2d): about 1 s per kind in prepare and 4 s in convert. A
    kind with no node in the graph has nothing to match, so skipping it changes nothing (idempotent)."""
    from torchao.quantization.pt2e import qat_utils

    for attribute in ("_fuse_conv_bn_qat_helper", "_fold_conv_bn_qat_helper"):
        original = getattr(qat_utils, attribute)
        if getattr(original, "edgekit_wrapped", False):
            continue

        def helper(m, conv_fn, example_inputs, is_cuda, _original=original):
            wanted = getattr(conv_fn, "__name__", "")
            if wanted and not any(_op_name(node) == wanted for node in m.graph.nodes):
                return m
            return _original(m, conv_fn, example_inputs, is_cuda)

        helper.edgekit_wrapped = True
        setattr(qat_utils, attribute, helper)


def make_quantizer():
    """LiteRT-Torch's PT2E quantizer: symmetric int8, per-channel weights, QAT fake-quant."""
    with native_stderr_silenced():
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    _patch_litert_pattern_export()
    _patch_fold_only_present_convs()
    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))


def export_for_training(model: nn.Module, dataset):
    """The model as a training-IR `GraphModule` with a dynamic batch (or the model's static one)."""
    fixed = train.static_batch(model)
    count = fixed or 2  # a batch of 1 would be specialised (0/1 specialisation) and fixed
    x = np.asarray(dataset.x_train[:count], dtype=np.float32)
    if len(x) < count:
        x = np.concatenate([x] + [x[:1]] * (count - len(x)))
    example = torch.from_numpy(to_nchw(x))
    train.set_mode(model, False)
    if fixed:  # the graph records the fixed batch in its input's shape (`train.static_batch`)
        return torch.export.export(model, (example,)).module()
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(model, (example,), dynamic_shapes=({0: batch},)).module()


def _has_op(graph_module, fragment: str) -> bool:
    return any(node.op == "call_function" and fragment in str(node.target) for node in graph_module.graph.nodes)


def allow_train_eval(graph_module):
    """Make `.train()` / `.eval()` work on a PT2E graph (torchao's prepare forbids them).

    Like torchao's `allow_exported_model_train_eval`, a switch rewrites the graph's batch-norm and
    dropout ops between their training and inference forms; but only the families the graph holds
    are rewritten (each rewrite re-exports its patterns, about 0.5 s), and a graph with neither
    gets no-ops."""
    import types

    try:
        from torchao.quantization.pt2e.export_utils import _replace_batchnorm, _replace_dropout
    except ImportError:  # a torchao without these helpers: its public (slower) switch
        from torchao.quantization.pt2e import allow_exported_model_train_eval

        return allow_exported_model_train_eval(graph_module)

    rewrites = [fn for fn, fragment in ((_replace_dropout, "dropout"), (_replace_batchnorm, "batch_norm"))
                if _has_op(graph_module, fragment)]
    state = {"training": None}

    def switch(self, mode: bool = True):
        mode = bool(mode)
        if state["training"] != mode:
            for rewrite in rewrites:
                rewrite(self, train_to_eval=not mode)
            state["training"] = mode
        return self

    graph_module.train = types.MethodType(switch, graph_module)
    graph_module.eval = types.MethodType(lambda self: switch(self, False), graph_module)
    return graph_module


def _fake_quant_types() -> tuple:
    """The base classes of fake-quant and observer modules: torchao's PT2E ones and torch.ao's."""
    from torchao.quantization.pt2e.fake_quantize import FakeQuantizeBase
    from torchao.quantization.pt2e.observer import ObserverBase

    types = [FakeQuantizeBase, ObserverBase]
    try:
        from torch.ao.quantization.fake_quantize import FakeQuantizeBase as AoFakeQuantizeBase
        from torch.ao.quantization.observer import ObserverBase as AoObserverBase

        types += [AoFakeQuantizeBase, AoObserverBase]
    except ImportError:  # a torch without torch.ao.quantization
        pass
    return tuple(types)


def _float32_input(_module, args):
    """A forward pre-hook: the module's tensor inputs as float32 (others, and float32, unchanged)."""
    return tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)


@contextlib.contextmanager
def fake_quant_in_float32(graph_module) -> Iterator[None]:
    """Within the block, every fake-quant and observer module of the graph takes float32 inputs.

    Under mixed precision the layer before a fake-quant computes in 16 bits (autocast), but the
    fused observe-and-fake-quantize ops take only float32, and the ranges they learn should be
    float32's. A forward pre-hook casts the input (a no-op when it already is float32); the next
    layer computes in 16 bits again, as autocast casts its input back."""
    types = _fake_quant_types()
    hooks = [module.register_forward_pre_hook(_float32_input) for module in graph_module.modules()
             if isinstance(module, types)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _zero_masks(model: nn.Module, names) -> dict:
    """{parameter name: 0/1 mask} for the weights of a pruned model that hold zeros."""
    masks = {}
    for name, param in model.named_parameters():
        if param.ndim >= 2 and name in names and bool((param == 0).any()):
            masks[name] = (param.detach() != 0).to(param.dtype)
    return masks


def float_weights(prepared, float_model: nn.Module) -> tuple[nn.Module, bool]:
    """`float_model` with the prepared graph's fine-tuned parameters and buffers (matched by name).

    Returns (model, True) when every parameter was found; otherwise the untouched `float_model`
    and False."""
    source = prepared.state_dict()
    target = float_model.state_dict()
    params = {name for name, _ in float_model.named_parameters()}
    matched = {k: v.detach().clone() for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    if not params <= set(matched):
        return float_model, False
    float_model.load_state_dict({**target, **matched}, strict=True)
    return float_model, True


def qat(artifact: Artifact, config, ctx) -> Artifact:
    """Fine-tune `artifact.model` with int8 fake quantization; returns the converted PT2E graph."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    if isinstance(artifact.model, torch.jit.ScriptModule):
        raise InputError("quantize method: qat needs an nn.Module or a torch.export program (.pt2); a TorchScript "
                         "model cannot be captured by torch.export for PT2E quantization. Use method: ptq, or save "
                         "the teacher with torch.export.save or as a state_dict with teacher.factory.")
    source = train.clone(artifact.model)
    float_model = train.clone(artifact.model)
    quantizer = make_quantizer()
    prepared = allow_train_eval(prepare_qat_pt2e(export_for_training(source, ctx.dataset), quantizer))

    names = dict(prepared.named_parameters())
    masks = _zero_masks(float_model, set(names)) if artifact.pruned else {}

    def keep_zeros(model) -> None:
        with torch.no_grad():
            for name, mask in masks.items():
                masks[name] = mask = mask.to(names[name].device)  # once, to the device training runs on
                names[name].mul_(mask)

    base_loss = train.default_loss(source, ctx.recipe.task)  # the graph hides a final nn.Softmax

    with fake_quant_in_float32(prepared):
        train.fit_module(prepared, ctx.dataset, config.epochs, config.batch_size, config.learning_rate,
                         ctx.recipe.seed, progress=ctx.progress.task, description="quantization-aware training",
                         loss_fn=lambda out, x, y: base_loss(out, y), after_step=keep_zeros if masks else None)
    prepared.eval()
    float_model, fine_tuned = float_weights(prepared, float_model)
    converted = allow_train_eval(convert_pt2e(prepared, fold_quantize=False))
    converted.eval()

    scheme = SCHEME + (", sparsity-preserving" if masks else "")
    details = {"scheme": scheme}
    if not fine_tuned:
        details["float_model"] = ("the input model's weights: the QAT graph's parameters could not be matched "
                                  "to it by name, so the ONNX export does not include the fine-tuning")
    return artifact.evolve("quantize", model=converted, plan=config.plan(), details=details,
                           qat=QuantizationAware(float_model=float_model, quantizer=quantizer))


__all__ = ["SCHEME", "allow_train_eval", "export_for_training", "float_weights", "make_quantizer", "qat"]
