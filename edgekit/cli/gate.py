"""`edgekit gate MODEL|REPORT`: judge a model file or a run for CI.

    edgekit gate runs/ci --baseline baseline/report.json --max-growth 5% --junit gate.xml

Errors meant for the user go through `edgekit.cli.console.user_errors` (exit 2 bad input, 3 a
runtime failed), and `gate` exits 0 when every gate passes and 1 when one fails (DESIGN.md). The
judging itself is `edgekit.gates`: pure functions of report dicts, shared with `compress`. What
counts as a model file, and its format and runtime, come from the format registry.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Optional

import click

from edgekit.cli.console import stdout, user_errors
from edgekit.formats.registry import format_for_path, formats_run_on, known_suffixes


# ---- gate: inputs ----------------------------------------------------------------------------

def parse_growth(value: str) -> float:
    """'5%' -> 0.05; '0.05' -> 0.05. A bare number is a fraction, so it must be at most 1."""
    text = str(value).strip()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(%?)", text)
    if not match:
        raise ValueError(f"--max-growth: expected a percentage such as 5% or a fraction such as 0.05, got {value!r}")
    number = float(match.group(1))
    if match.group(2):
        return number / 100
    if number > 1:
        raise ValueError(f"--max-growth: {value!r} read as a fraction would allow {number:.0%} growth; "
                         f"write {number:g}% for percent, or a fraction such as 0.05")
    return number


def load_report_file(path: Path, what: str = "report") -> dict:
    """report.json (or RUN_DIR/report.json) as a dict; InputError when missing or not an edgekit report."""
    from edgekit.errors import InputError

    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        hint = " (no report.json in that directory)" if path.is_dir() else ""
        raise InputError(f"{file}: {what} not found{hint}; give a report.json or the directory of an "
                         "`edgekit compress` run")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: not valid JSON ({exc}); give the report.json that `edgekit compress` "
                         "wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("artifacts"), list):
        raise InputError(f"{file}: not an edgekit report (no 'artifacts' list); give the report.json "
                         "that `edgekit compress` wrote")
    return data


def _model_report(path: Path, max_latency_ms: Optional[float], micro: bool = False) -> dict:
    """A report of a bare model file: its size, its latency when a latency gate asks, and (`micro`)
    a second entry for the file on TFLite Micro with the arena and flash it needs."""
    from edgekit.errors import InputError
    from edgekit.formats.files import file_size

    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    fmt = format_for_path(path)
    artifact = {"name": path.name, "role": "final", "format": fmt.name, "bytes": file_size(path)["bytes"],
                "runtime": fmt.default_runtime}
    if max_latency_ms is not None:
        from edgekit.bench import bench

        artifact["latency_ms"] = bench(path)["latency_ms"]
    if not micro:
        return {"artifacts": [artifact]}
    from edgekit.gates import MICRO_RUNTIME
    from edgekit.runtimes import get_runtime

    if MICRO_RUNTIME not in fmt.runtimes:
        raise InputError(f"{path}: --max-arena and --max-flash are measured on TFLite Micro, which runs "
                         f"{', '.join(f.suffix for f in formats_run_on(MICRO_RUNTIME))} files")
    with get_runtime(MICRO_RUNTIME).open(path) as session:
        return {"artifacts": [artifact, {**artifact, "runtime": MICRO_RUNTIME, **session.facts()}]}


def collect_results(target: str, max_size, min_accuracy, max_latency_ms, max_accuracy_drop, baseline_path,
                    max_growth, max_arena=None, max_flash=None) -> list[dict]:
    """Read TARGET (model file, report.json or run directory) and the baseline; return every gate result."""
    from edgekit.errors import InputError
    from edgekit.gates import artifact_latency_gate, evaluate_gates, regression_gates
    from edgekit.sizes import parse_size

    path = Path(target)
    is_model = path.suffix.lower() in known_suffixes()
    limits = {}
    for flag, value in (("--max-size", max_size), ("--max-arena", max_arena), ("--max-flash", max_flash)):
        try:
            limits[flag] = parse_size(value) if value is not None else None
        except ValueError as exc:
            raise InputError(f"{flag}: {exc}") from None
    size_limit, arena_limit, flash_limit = limits.values()
    micro = arena_limit is not None or flash_limit is not None
    try:
        growth = parse_growth(max_growth) if max_growth is not None else None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if size_limit is None and min_accuracy is None and max_latency_ms is None and max_accuracy_drop is None \
            and growth is None and not micro:
        raise InputError("no gate given: use at least one of --max-size, --min-accuracy, --max-latency-ms, "
                         "--max-accuracy-drop, --max-arena, --max-flash, or --baseline with --max-growth")
    if growth is not None and baseline_path is None:
        raise InputError("--max-growth compares against an older report: give it with --baseline OLD_REPORT.json")
    if is_model and (min_accuracy is not None or max_accuracy_drop is not None):
        raise InputError(f"{target}: accuracy gates need a report (report.json or a run directory from "
                         "`edgekit compress`); a model file alone carries no accuracy. Only --max-size, "
                         "--max-latency-ms, --max-arena, --max-flash and --baseline --max-growth apply to a "
                         "model file")
    if not is_model and not path.is_dir() and path.suffix.lower() != ".json":
        raise InputError(f"{target}: expected a {' or '.join(known_suffixes())} model, a report.json, or a "
                         "run directory")
    baseline = load_report_file(Path(baseline_path), "baseline report") if baseline_path is not None else None
    report = _model_report(path, max_latency_ms, micro) if is_model else load_report_file(path)

    # --max-accuracy-drop: against the teacher in the same report (as the recipe's gate), or, with
    # --baseline, against the same artifact in the baseline (a regression check).
    teacher_drop = max_accuracy_drop if baseline is None else None
    results = evaluate_gates(report, {"max_size": size_limit, "min_accuracy": min_accuracy,
                                      "max_accuracy_drop": teacher_drop,
                                      "max_latency_ms": None if is_model else max_latency_ms,
                                      "max_arena": arena_limit, "max_flash": flash_limit})
    if is_model and max_latency_ms is not None:
        results.append(artifact_latency_gate(report["artifacts"][0], max_latency_ms))
    if baseline is not None:
        results += regression_gates(report, baseline, max_growth=growth,
                                    max_accuracy_drop=max_accuracy_drop, match="format" if is_model else "name")
    if not results:
        raise InputError(f"{target}: nothing to gate: the report has no final artifacts (role 'final')")
    return results


# ---- gate: outputs ---------------------------------------------------------------------------

def _direction(gate: str) -> str:
    return ">=" if gate.startswith("min_") else "<="


def _number(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _describe(result: dict) -> str:
    value = "missing (not measured)" if result["value"] is None else _number(result["value"])
    return f"limit {_direction(result['gate'])} {_number(result['limit'])}, value {value} [{result['unit']}]"


def gate_line(result: dict) -> str:
    """One human line per gate: `FAIL max_size[model.tflite]: limit <= 200000, value 210000 [bytes]`."""
    return f"{'pass' if result['passed'] else 'FAIL'} {result['gate']}[{result['artifact']}]: {_describe(result)}"


def junit_xml(results: list[dict]) -> bytes:
    """JUnit XML: testsuites > testsuite "edgekit gate" > one testcase per gate, <failure> when it failed."""
    import xml.etree.ElementTree as ET

    failures = sum(1 for r in results if not r["passed"])
    root = ET.Element("testsuites", name="edgekit", tests=str(len(results)), failures=str(failures), errors="0")
    suite = ET.SubElement(root, "testsuite", name="edgekit gate", tests=str(len(results)), failures=str(failures),
                          errors="0", skipped="0")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="edgekit.gate", name=f"{r['gate']}[{r['artifact']}]")
        if not r["passed"]:
            failure = ET.SubElement(case, "failure", message=_describe(r), type="GateFailed")
            failure.text = json.dumps(r)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


@click.command("gate")
@click.argument("target", metavar="MODEL|REPORT")
@click.option("--max-size", metavar="SIZE", help="Largest final artifact: 65536, 64KB, 64KiB, 0.5MB.")
@click.option("--min-accuracy", type=float, help="Lowest accuracy of each final artifact (report only).")
@click.option("--max-latency-ms", type=float,
              help="Highest p50 in ms: LiteRT p50 of model.tflite from a report; a model file is benchmarked.")
@click.option("--max-accuracy-drop", type=float,
              help="Largest accuracy drop (MAE rise): against the teacher, or against --baseline when given.")
@click.option("--max-arena", metavar="SIZE",
              help="Largest TFLite Micro tensor arena (a report's tflm entries; a .tflite is run on TFLM).")
@click.option("--max-flash", metavar="SIZE", help="Largest .tflite flashed with TFLite Micro (as --max-arena).")
@click.option("--baseline", "baseline_path", metavar="OLD_REPORT.json",
              help="An older report.json (or run directory) to compare final artifacts with, by name.")
@click.option("--max-growth", metavar="PCT", help="Largest size growth over --baseline: 5% or 0.05.")
@click.option("--junit", "junit_path", metavar="FILE", help="Also write the results as JUnit XML (even on failure).")
@click.option("--json", "as_json", is_flag=True, help="Print {passed, exit_code, gates} as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def gate_command(target: str, max_size: Optional[str], min_accuracy: Optional[float], max_latency_ms: Optional[float],
                 max_accuracy_drop: Optional[float], max_arena: Optional[str], max_flash: Optional[str],
                 baseline_path: Optional[str], max_growth: Optional[str], junit_path: Optional[str], as_json: bool,
                 debug: bool) -> None:
    """Check MODEL (.tflite/.onnx: size, latency) or REPORT (report.json or run directory: every gate).

    Exit codes: 0 every gate passed; 1 a gate failed; 2 bad input (missing file, invalid JSON, no
    gate given, unknown unit, accuracy gates on a bare model file); 3 the runtime failed.
    """
    from edgekit.gates import verdict

    with user_errors(debug):
        results = collect_results(target, max_size, min_accuracy, max_latency_ms, max_accuracy_drop,
                                  baseline_path, max_growth, max_arena, max_flash)
        code = verdict(results)
        if junit_path:
            from edgekit.errors import InputError

            try:
                Path(junit_path).parent.mkdir(parents=True, exist_ok=True)
                Path(junit_path).write_bytes(junit_xml(results))
            except OSError as exc:
                raise InputError(f"{junit_path}: cannot write the JUnit file ({exc.strerror or exc})") from None
    if as_json:
        click.echo(json.dumps({"passed": code == 0, "exit_code": code, "gates": results}, indent=2))
    else:
        for r in results:
            stdout.print(gate_line(r), style=None if r["passed"] else "bold red", markup=False, highlight=False)
        failed = sum(1 for r in results if not r["passed"])
        stdout.print(f"{len(results) - failed}/{len(results)} gates passed", markup=False)
    sys.exit(code)
