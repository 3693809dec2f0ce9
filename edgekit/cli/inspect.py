"""`edgekit inspect MODEL [--json] [--top N] [--no-gpu-check] [--debug]`: the click command and its rendering.

The group (`edgekit.cli.group`) imports this module only when `inspect` runs or its help is shown;
the inspection itself (`edgekit.formats.inspect`) is imported inside the command, and TensorFlow
only for the GPU-delegate check.

    $ edgekit inspect runs/digits/model.tflite
    $ edgekit inspect model.onnx --json --top 20 > inspect.json   # follows edgekit/schemas/inspect.schema.json
"""

from __future__ import annotations

import json

import click

from edgekit.cli.console import debug_mode, stdout, user_errors


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return f"{len(value)} values ({_number(min(value))} … {_number(max(value))})"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _quant_text(entry: dict) -> str:
    if entry.get("scale") is None:
        text = "-"
    else:
        text = f"scale {_number(entry['scale'])}, zero point {_number(entry['zero_point'])}"
        if entry.get("quantized_dimension") is not None:
            text += f", per channel along dim {entry['quantized_dimension']}"
    after = entry.get("quantization_after_input")
    if after:
        text += (f" (first QuantizeLinear: {after['dtype']}, scale {_number(after['scale'])}, "
                 f"zero point {_number(after['zero_point'])})")
    return text


def _io_table(title: str, entries: list[dict]):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in ("name", "shape", "dtype", "quantization"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(e["name"], str(e["shape"]), e["dtype"], _quant_text(e))
    return table


def float_warning(info: dict) -> str | None:
    """The one-line warning about ops computing in float in a quantized model, or None."""
    float_ops = info["quantization"]["float_ops"]
    if not float_ops:
        return None
    listed = ", ".join(f"{op['op']} (#{op['index']})" if op["index"] is not None else op["op"]
                       for op in float_ops[:8])
    more = f", and {len(float_ops) - 8} more" if len(float_ops) > 8 else ""
    return f"⚠ {len(float_ops)} ops run in float in this int8 model: {listed}{more}"


def delegation_line(delegation: dict) -> str:
    """`delegated to XnnpackBackend (1 subgraph): 7 ops (XNNConv2d ×2, ...); not delegated: none`."""
    def listed(ops: dict) -> str:
        return ", ".join(f"{name} ×{count}" for name, count in ops.items()) or "none"

    done, left = delegation["delegated_ops"], delegation["non_delegated_ops"]
    return (f"delegated to {delegation['backend']} ({delegation['delegates']} subgraph(s)): "
            f"{sum(done.values())} ops ({listed(done)}); not delegated: {sum(left.values())} ops ({listed(left)})")


def render(console, info: dict) -> None:
    """Print the compact human view of `inspect_model`'s result on a rich Console."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{escape(info['file'])}[/]  {info['format']} · {info['bytes']:,} bytes "
                  f"(gzip {info['gzip_bytes']:,}) · {info['params']:,} params"
                  + (f" · files: {', '.join(info['files'])}" if len(info["files"]) > 1 else ""))
    quant = info["quantization"]
    console.print(f"quantization: [bold]{escape(quant['kind'])}[/]")
    warning = float_warning(info)
    if warning:
        console.print(f"[yellow]{escape(warning)}[/]", soft_wrap=True)
        for op in quant["float_ops"][:8]:
            console.print(f"  [dim]{escape(op['op'])}: {escape(op['reason'])}[/]", soft_wrap=True)
    delegation = info.get("delegation")
    if delegation is not None:  # .pte: what XNNPACK runs and what ExecuTorch's own kernels run
        console.print(delegation_line(delegation), soft_wrap=True)
    console.print(_io_table("inputs", info["inputs"]))
    console.print(_io_table("outputs", info["outputs"]))

    ops = Table(title=f"ops ({sum(info['ops'].values())})", title_justify="left", show_edge=False, pad_edge=False)
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for name, count in info["ops"].items():
        ops.add_row(escape(name), str(count))
    console.print(ops)

    if info["tensors_by_size"]:
        tensors = Table(title="largest constant tensors", title_justify="left", show_edge=False, pad_edge=False)
        for column in ("name", "shape", "dtype", "bytes"):
            tensors.add_column(column, overflow="fold", justify="right" if column == "bytes" else "left")
        for t in info["tensors_by_size"]:
            tensors.add_row(escape(t["name"]), str(t["shape"]), t["dtype"], f"{t['bytes']:,}")
        console.print(tensors)

    sparsity = info["weight_sparsity"]
    console.print(f"weight sparsity: {sparsity['sparsity']:.1%} ({sparsity['zeros']:,} of "
                  f"{sparsity['elements']:,} weights are zero, {len(sparsity['layers'])} weight tensors)")
    for sig in info["signatures"]:
        console.print(f"signature [bold]{escape(sig['name'])}[/]: inputs {', '.join(sig['inputs'])}; "
                      f"outputs {', '.join(sig['outputs'])}")
    gpu = info["gpu_delegate"]
    if not gpu["available"]:
        console.print(f"GPU delegate: [dim]{escape(gpu['reason'])}[/]")
    else:
        verdict = "[green]compatible[/]" if gpu["compatible"] else "[red]not compatible[/]"
        console.print(f"GPU delegate: {verdict} (TensorFlow {gpu['tensorflow']} model analyzer)")
        for line in gpu["warnings"][:10]:
            console.print(f"  [dim]{escape(line)}[/]", soft_wrap=True)
        if gpu.get("note"):
            console.print(f"  [yellow]note:[/] {escape(gpu['note'])}", soft_wrap=True)


@click.command("inspect")
@click.argument("model_path", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (see edgekit/schemas/inspect.schema.json).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=0), metavar="N",
              help="How many of the largest constant tensors to list.")
@click.option("--no-gpu-check", is_flag=True,
              help="Skip TensorFlow Lite's GPU-delegate analyzer (it imports TensorFlow, which takes seconds).")
@click.option("--debug", is_flag=True, help="Show tracebacks and the frameworks' own logs.")
def inspect_command(model_path: str, as_json: bool, top: int, no_gpu_check: bool, debug: bool) -> None:
    """Describe MODEL (.tflite, .onnx or .pte): inputs/outputs, quantization, float ops, op histogram, sizes.

    A .pte also shows the ops delegated to XNNPACK and those left to ExecuTorch's own kernels.

    Exit codes: 0 done; 2 the file is missing or not a valid model.
    """
    debug_mode(debug)
    with user_errors(debug):
        from edgekit.formats.inspect import inspect_model

        info = inspect_model(model_path, top=top, gpu_check=not no_gpu_check)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        render(stdout, info)
