"""torch recurrent layers (nn.LSTM, nn.GRU) in a full-integer .tflite: int8 weights, not float.

What LiteRT-Torch 0.10 emits: no fused op. It lowers `aten.lstm` / `aten.gru` through torch's own
decomposition (`torch._decomp`) into an unrolled graph: one FULLY_CONNECTED for the input projection
of all time steps, then per time step a FULLY_CONNECTED on the hidden state (the recurrent weight is
stored once and shared) and the gates as LOGISTIC / TANH / MUL / ADD.

Why the PT2E int8 file kept the recurrent weights float: PT2E quantizes the graph that
`torch.export` gives, in which the layer is still one `aten.lstm.input` node, and LiteRT-Torch's
PT2EQuantizer annotates `linear`, `conv`, `add` ... but not that node; the weights were then lowered
as float. `decompose` runs torch's decomposition of the recurrent ops only
(`ExportedProgram.run_decompositions` with a table holding just them) before PT2E, so the quantizer
sees the layer's `aten.linear` nodes and quantizes their weights like any other Linear.

Two quantizer settings for the decomposed layer (`quantizer`):
- LiteRT-Torch's `gru_io_only` annotator is dropped: it expects an `nn.GRU` still fed its hidden state
  as a graph input, and fails on the decomposed one (`IndexError` in `_annotate_gru_io_only`).
- The recurrent layers' weights are per-tensor (the rest of the model keeps the plan's per-channel):
  in the unrolled graph every time step has its own int32 bias (the bias scale is the product of the
  step's input scale and the weight scale), and per-channel each copy carries 4 * hidden float scales
  and int64 zero points: for a 128-unit LSTM over 8 steps that was 63 kB, a third of the file. TFLite's
  own int8 LSTM kernel quantizes its weights per tensor too.

The AI Edge Quantizer path (int8 with float32 / uint8 I/O) quantizes the lowered FULLY_CONNECTED ops of
the float .tflite directly and needs no decomposition; its recipe makes the ops whose output tensor
names carry the layer's module path (`SCOPE`, as LiteRT-Torch names them) per tensor, for the same
reason (a 128-unit LSTM over 8 steps: 0.57x -> 0.37x the float bytes).
"""

from __future__ import annotations

#: the aten ops of recurrent layers that PT2E would otherwise leave float
RECURRENT_MODULES = ("torch.nn.modules.rnn.LSTM", "torch.nn.modules.rnn.GRU")
#: AI Edge Quantizer scope (a regex on op output tensor names) of the ops LiteRT-Torch lowers these layers to
SCOPE = r".*torch\.nn\.modules\.rnn\.(LSTM|GRU)_.*"


def _recurrent_ops():
    from edgekit.backends.torch.compat import torch

    aten = torch.ops.aten
    return (aten.lstm.input, aten.gru.input)


def has_recurrent(exported) -> bool:
    """True when the torch.export program `exported` has an LSTM or GRU node."""
    ops = _recurrent_ops()
    return any(node.op == "call_function" and node.target in ops for node in exported.graph.nodes)


def decompose(exported):
    """The module of `exported` (an ExportedProgram) with its LSTM / GRU nodes replaced by torch's
    decomposition (linear + gate ops per time step) and nothing else decomposed, the recurrent
    biases added after the per-step linears (`shared_step_biases`)."""
    from edgekit.backends.torch.compat import torch

    if not has_recurrent(exported):
        return exported.module()
    ops = _recurrent_ops()
    table = {op: fn for op, fn in torch.export.default_decompositions().items() if op in ops}
    module = exported.run_decompositions(table).module()
    shared_step_biases(module)
    return module


def shared_step_biases(module) -> int:
    """Rewrite, in place, every `linear(x, W, b)` whose weight `W` several linears share (the
    recurrent weight, applied once per time step) as `linear(x, W) + b`; return how many.

    Why: a quantized FULLY_CONNECTED stores its bias as int32 at the scale input scale x weight
    scale, and the hidden state has its own scale at every step, so each step stored its own copy of
    the bias (35 kB of a 192 kB int8 LSTM of 128 units over 16 steps). Added after the linear, the
    bias is one constant that every step's ADD reads (PT2E leaves that ADD and its bias float: 2 kB
    for the whole LSTM). Same arithmetic in float."""
    from edgekit.backends.torch.compat import torch

    linear = torch.ops.aten.linear.default
    calls = [n for n in module.graph.nodes if n.op == "call_function" and n.target is linear and len(n.args) == 3
             and n.args[2] is not None]
    uses: dict = {}
    for node in calls:
        uses[node.args[1]] = uses.get(node.args[1], 0) + 1
    rewritten = 0
    for node in calls:
        if uses[node.args[1]] < 2:
            continue
        x, weight, bias = node.args
        with module.graph.inserting_after(node):
            added = module.graph.call_function(torch.ops.aten.add.Tensor, (node, bias))
        node.replace_all_uses_with(added, delete_user_cb=lambda user: user is not added)
        node.args = (x, weight)
        added.meta.update({k: v for k, v in node.meta.items() if k in ("val", "tensor_meta", "nn_module_stack",
                                                                         "source_fn_stack", "stack_trace")})
        rewritten += 1
    if rewritten:
        module.graph.lint()
        module.recompile()
    return rewritten


def quantizer(per_channel: bool, dynamic: bool):
    """LiteRT-Torch's PT2EQuantizer, symmetric int8 (per-channel weights when `per_channel`), set up
    for decomposed recurrent layers as the module docstring says."""
    from litert_torch.quantize import pt2e_quantizer as pq

    class Quantizer(pq.PT2EQuantizer):
        STATIC_OPS = [op for op in pq.PT2EQuantizer.STATIC_OPS if op != "gru_io_only"]

    q = Quantizer().set_global(pq.get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=dynamic))
    if not dynamic:
        per_tensor = pq.get_symmetric_quantization_config(is_per_channel=False, is_dynamic=False)
        for module_type in RECURRENT_MODULES:  # nn_module_stack records module types by name
            q.set_module_type(module_type, per_tensor)
    return q
