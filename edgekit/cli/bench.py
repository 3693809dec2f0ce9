"""`edgekit bench MODEL`: time one model file on its runtime (latency percentiles, memory, size).

    edgekit bench runs/quickstart/model.tflite --threads 2 --runs 200 --json

The timing is `edgekit.bench`, the same code `compress` uses for report.json; it is imported when
the command runs. The runtimes offered and the default for each suffix come from the format registry.
"""

from __future__ import annotations

import json
from typing import Optional

import click

from edgekit.cli.console import stdout, user_errors
from edgekit.formats.registry import FORMATS, runtime_names

_DEFAULT_RUNTIMES = ", ".join(f"{fmt.suffix} -> {fmt.default_runtime}" for fmt in FORMATS.values())


def _print_bench(console, result: dict) -> None:
    from rich.table import Table

    from edgekit.sizes import format_size

    req, rep, lat, mem = result["requested"], result["reported"], result["latency_ms"], result["memory"]
    table = Table(title=f"{result['model']} on {result['runtime']} {result['runtime_version']}", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("p50", "p90", "p99", "mean", "min", "max"):
        table.add_row(f"latency {key}", f"{lat[key]:.4f} ms")
    for key in ("runs", "warmup", "batch", "threads"):
        shown = f"{rep[key]}" if rep[key] == req[key] else f"{rep[key]} (asked {req[key]})"
        table.add_row(key, shown)
    table.add_row("model size", f"{result['bytes']:,} B ({format_size(result['bytes'])})")
    table.add_row("peak RSS", format_size(mem["peak_rss_bytes"]))
    table.add_row("RSS increase", format_size(mem["rss_increase_bytes"]))
    inp = result["input"]
    table.add_row("input", f"{inp['name']} {inp['dtype']} {inp['shape']} ({inp['source']})")
    console.print(table)


@click.command("bench")
@click.argument("model", metavar="MODEL")
@click.option("--runtime", type=click.Choice(runtime_names()), default=None,
              help=f"Runtime to use (default: from the suffix: {_DEFAULT_RUNTIMES}).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="CPU threads.")
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True, help="Untimed runs first.")
@click.option("--runs", type=click.IntRange(min=1), default=100, show_default=True, help="Timed runs.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Samples per run.")
@click.option("--input", "input_path", metavar="FILE.npz", default=None,
              help="Time this batch (the array named like the model input, else the first) instead of random data.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def bench_command(model: str, runtime: Optional[str], threads: int, warmup: int, runs: int, batch: int,
                  input_path: Optional[str], as_json: bool, debug: bool) -> None:
    """Time MODEL (.tflite / .onnx) on its runtime: latency p50/p90/p99, threads, memory, size.

    The timing is the same code `compress` uses for report.json. Exit codes: 0 measured; 2 bad input
    (missing or corrupt model, an --input that does not fit the model); 3 the runtime failed.
    """
    with user_errors(debug):
        from edgekit.bench import bench

        result = bench(model, runtime=runtime, threads=threads, warmup=warmup, runs=runs, batch=batch,
                       input_path=input_path)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_bench(stdout, result)
