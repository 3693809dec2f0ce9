"""Torch models in the stage cache, in forms that load without unpickling Python objects.

One of three files in the entry's model directory, by what the model is:
- `model.ts`: a TorchScript module, saved and loaded by torch.jit (which unpickles no Python objects);
- `model.pt2`: a `torch.export` / PT2E graph (an exported teacher or student, a QAT graph), exported
  again from its eval-mode graph with the input shape it records (a static batch stays static, a
  dynamic one dynamic) and read back with `torch.export.load`;
- `weights.pt` + `module.json`: any other `nn.Module`, as its state_dict (read with
  `weights_only=True`) and what rebuilds the module around it: a zoo model's arch and width (the
  input shape and task are the run's), or the recipe's `teacher.factory` (named by the recipe, never
  by the cache) for a module of the class it builds; plus each layer's sizes, so a channel-pruned
  model (whose layers Torch-Pruning narrowed) gets its narrower layers back.
A model that fits none of these raises, and the stage cache then stores no entry for it.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from edgekit.errors import InputError
from edgekit.zoo import Head
from edgekit.backends.torch import loading, transfer, zoo
from edgekit.backends.torch.compat import nn, torch
from edgekit.backends.torch.train import input_placeholder, set_mode, static_batch

SCRIPT, PROGRAM, WEIGHTS, MODULE = "model.ts", "model.pt2", "weights.pt", "module.json"
# Layer attributes Torch-Pruning changes when it narrows a layer (recorded for every layer that has them).
SIZES = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")


def save(model, directory: Path) -> None:
    directory.mkdir(parents=True)
    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, str(directory / SCRIPT))
    elif isinstance(model, torch.fx.GraphModule):
        torch.export.save(_program(model), str(directory / PROGRAM))
    else:
        state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        torch.save(state, directory / WEIGHTS)
        (directory / MODULE).write_text(json.dumps({"rebuild": _rebuild(model), "sizes": _sizes(model)}))


def _program(model):
    """The graph as a `torch.export` program, with the batch dimension its input records."""
    node = input_placeholder(model)
    shape = getattr(node.meta.get("val"), "shape", None) if node is not None else None
    if shape is None or not all(isinstance(d, int) for d in shape[1:]):
        raise ValueError(f"the {type(model).__name__} graph records no input shape to export it with")
    fixed = static_batch(model)
    example = torch.zeros((fixed or 2,) + tuple(int(d) for d in shape[1:]))
    dynamic = None if fixed else ({0: torch.export.Dim.DYNAMIC},)  # with the ranges the graph allows
    set_mode(model, False)
    return torch.export.export(model, (example,), dynamic_shapes=dynamic)


def _rebuild(model) -> dict:
    if isinstance(model, zoo.ZooNet) or getattr(model, "arch", None) in transfer.TORCHVISION:
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        head = getattr(model, "head_config", None)
        return {"zoo": model.arch, "width": model.width, "outputs": int(last.out_features),
                **({"head": {"dropout": head.dropout, "dense": list(head.dense)}} if head is not None else {})}
    return {"factory": type(model).__qualname__}


def _sizes(model) -> dict:
    return {name: {attr: getattr(module, attr) for attr in SIZES if isinstance(getattr(module, attr, None), int)}
            for name, module in model.named_modules()}


def load(directory: Path, context, quantization_aware: bool = False):
    """The model `save` wrote; InputError when the directory holds no model `save` could have written."""
    if (directory / SCRIPT).is_file():
        return loading.load_script(directory / SCRIPT, key="stage cache")
    if (directory / PROGRAM).is_file():
        # a QAT graph holds quantized_decomposed ops, which torch registers only when this module is imported
        import torch.ao.quantization.fx._decomposed  # noqa: F401

        module = loading.load_export(directory / PROGRAM, key="stage cache")
        if quantization_aware:
            from edgekit.backends.torch.qat import allow_train_eval

            module = allow_train_eval(module)
        set_mode(module, False)
        return module
    if (directory / WEIGHTS).is_file() and (directory / MODULE).is_file():
        return _load_module(directory, context)
    raise InputError(f"{directory}: holds no {SCRIPT}, {PROGRAM} or {WEIGHTS} with {MODULE}")


def _load_module(directory: Path, context):
    try:
        state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(f"{directory / WEIGHTS}: not a state_dict of tensors: {str(exc).strip()[:200]}") from None
    spec = json.loads((directory / MODULE).read_text())
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{directory / WEIGHTS}: not a state_dict of tensors")
    with torch.random.fork_rng(devices=[]):  # the skeleton's random init must not move the run's seed
        module = _skeleton(spec["rebuild"], context)
    _fit_sizes(module, spec["sizes"], state)
    module.load_state_dict(state, strict=True)
    set_mode(module, False)
    return module


def _skeleton(rebuild: dict, context) -> nn.Module:
    """A module of the saved one's architecture: from the zoo, or the recipe's teacher factory."""
    recipe = context.recipe
    if "zoo" in rebuild:
        head = rebuild.get("head")
        return zoo.build(str(rebuild["zoo"]), float(rebuild["width"]), tuple(context.dataset.input_shape),
                         int(rebuild["outputs"]), recipe.task,
                         head=Head(float(head["dropout"]), tuple(int(u) for u in head["dense"])) if head else None)
    teacher = recipe.teacher
    if not teacher.factory or not teacher.path:
        raise InputError(f"a cached {rebuild.get('factory')!r} module needs the recipe's teacher.factory to rebuild it")
    module = loading.import_factory(teacher.factory, recipe.resolve_path(teacher.path).parent)()
    if type(module).__qualname__ != rebuild.get("factory"):
        raise InputError(f"teacher.factory builds a {type(module).__qualname__}, the cache holds a "
                         f"{rebuild.get('factory')!r}")
    return module


def _fit_sizes(module: nn.Module, sizes: dict, state: dict) -> None:
    """Narrow the skeleton's layers to the saved sizes (a channel-pruned model's), tensors included."""
    layers = dict(module.named_modules())
    for name, attributes in sizes.items():
        layer = layers.get(name)
        if layer is None:
            continue
        for attr, value in attributes.items():
            if attr in SIZES and isinstance(getattr(layer, attr, None), int) and isinstance(value, int):
                setattr(layer, attr, value)
        prefix = f"{name}." if name else ""
        for key, tensor in list(layer._parameters.items()):
            saved = state.get(prefix + key)
            if tensor is not None and saved is not None and saved.shape != tensor.shape:
                layer._parameters[key] = nn.Parameter(torch.empty_like(saved), requires_grad=tensor.requires_grad)
        for key, tensor in list(layer._buffers.items()):
            saved = state.get(prefix + key)
            if tensor is not None and saved is not None and saved.shape != tensor.shape:
                layer._buffers[key] = torch.empty_like(saved)
