"""Every example recipe still produces the figures it produced before the restructure.

The code is being restructured with its behaviour unchanged; this test is how "unchanged" is
checked. Figures are recorded per CPU (`recorded_on`: the vendor and the vector units oneDNN picks
its kernels by, see `cpu_signature`): each recipe gives identical figures run to run on one CPU,
but training on an AMD EPYC (AVX-512) and on a Xeon with AMX differs in the last digits, which moves
an accuracy by a test sample or two. On a CPU with a record of its own (expected_metrics.json: AMD
EPYC; expected_metrics.xeon-amx.json: Xeon with AMX) the figures must be exactly those; on any
other CPU, those of expected_metrics.json within ACROSS_CPUS (accuracy ±2 points, bytes ±5%), the
rest (precision, layout, I/O type, parameters) exactly. expected_metrics.json holds, per recipes/*.yaml, what `edgekit compress` reported before
the restructure: for every artifact its bytes, gzip_bytes, params, accuracy, mae, agreement,
precision, io_type, layout and weight_sparsity, and for every stage its metrics' accuracy, params and
bytes. Each recipe was run three times to record it. Figures that were identical in every run must
stay identical (floats to a relative 1e-9). A few were not: tf2onnx numbers some tensor names
differently from run to run, so the gzip size of its .onnx files moves by a few bytes (and their
size would move by a byte if a name gained a digit). Those are under "tolerance_fields" with the
values seen and must stay within "tolerance". Re-record the file
only when a change of results is intended; so far once: the torch .onnx files lost the stack traces
torch.onnx writes into node metadata (absolute paths of the build machine), which made
digits_torch's baseline.onnx 2,866 and model.onnx 3,043 bytes smaller, every other figure unchanged;
then the int8 .onnx files, quantized with the variant ONNX Runtime runs fastest (U8S8 here), with short
tensor names and no torch.onnx node metadata: quickstart's model.onnx 166,708 -> 160,861 bytes,
tiny_sww's 77,222 -> 66,151, digits_torch's 51,867 -> 44,667 (and their gzip sizes), accuracy and
agreement unchanged; then the int8 .tflite files, with short activation names
(edgekit.formats.tflite.compact): only their bytes and gzip_bytes (and the export stage's bytes)
changed, e.g. quickstart's model.tflite 161,248 -> 160,696 and digits_full's 30,464 -> 29,520;
then the Keras QAT .onnx files, with their fused ReLUs moved after the QuantizeLinear as integer
Clips and uint8 activations (edgekit.formats.onnx.qdq_activations): digits_full's model.onnx
40,066 -> 40,169 bytes, digits_cluster's 166,774 -> 166,877 (and their gzip sizes), accuracy,
agreement and params unchanged; then the torch .onnx files, whose nodes are named after their
modules (`features.0/node_conv2d`, for per-layer precision): digits_torch's baseline.onnx
613,725 -> 613,783 and model.onnx 44,667 -> 44,707 bytes (and their gzip sizes), every other figure
unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.helpers import shared_model

pytestmark = pytest.mark.slow

#: the CPU features the frameworks pick their kernels by (oneDNN: AVX-512, VNNI, AMX), as
#: benchmarks/run_all.py reports them: trained models' figures are identical run to run on one CPU,
#: and differ in the last digits of training between CPUs that differ here
UNITS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")
#: on a CPU without a record, what the figures of another CPU's record must still be within
ACROSS_CPUS = {"accuracy": ("absolute", 0.02), "agreement": ("absolute", 0.03), "mae": ("relative", 0.1),
               "bytes": ("relative", 0.05), "gzip_bytes": ("relative", 0.05), "weight_sparsity": ("absolute", 0.02)}


def cpu_signature(cpuinfo: str) -> str:
    """"AuthenticAMD:avx2+avx512_bf16+...": the vendor and the UNITS of the first processor listed."""
    first = cpuinfo.split("\n\n", 1)[0]
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return f"{fields.get('vendor_id', 'unknown')}:{'+'.join(sorted(u for u in UNITS if u in flags))}"


def _records() -> dict:
    """{CPU signature: record} of every expected_metrics*.json beside this file."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("expected_metrics*.json")):
        record = json.loads(path.read_text())
        found[record["recorded_on"]] = record
    return found


RECORDS = _records()
DEFAULT = json.loads(Path(__file__).with_name("expected_metrics.json").read_text())
try:
    THIS_CPU = cpu_signature(Path("/proc/cpuinfo").read_text())
except OSError:
    THIS_CPU = "unknown"
EXACT = THIS_CPU in RECORDS  # else: another CPU's figures, within ACROSS_CPUS
EXPECTED = {k: v for k, v in RECORDS.get(THIS_CPU, DEFAULT).items() if k.endswith(".yaml")}
FIELDS = {
    "artifacts": ("bytes", "gzip_bytes", "params", "accuracy", "mae", "agreement", "precision", "io_type", "layout",
                  "weight_sparsity"),
    "stages": ("accuracy", "params", "bytes"),
}


def _pinned(report: dict, kind: str) -> dict:
    """{artifact or stage name: {field: value}} for the fields this test pins."""
    if kind == "artifacts":
        entries = {a["name"]: a for a in report["artifacts"]}
    else:
        entries = {s["name"]: s.get("metrics") or {} for s in report["stages"]}
    return {name: {f: entry[f] for f in FIELDS[kind] if f in entry} for name, entry in entries.items()}


def _same(expected, actual) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (expected, actual))
    if numbers and float in (type(expected), type(actual)):
        return math.isclose(expected, actual, rel_tol=1e-9)
    return expected == actual


def _across(field: str, value: float) -> dict:
    """The bound of a figure recorded on another CPU: ACROSS_CPUS around it."""
    kind, size = ACROSS_CPUS[field]
    return {"value": value, "tolerance": size if kind == "absolute" else abs(value) * size}


def _changes(expected: dict, report: dict) -> list[str]:
    """One readable line per pinned figure that changed, appeared or disappeared."""
    changes = []
    for kind in FIELDS:
        got = _pinned(report, kind)
        tolerant = expected.get("tolerance_fields", {}).get(kind, {})
        for name in sorted(expected[kind].keys() | got.keys()):
            if name not in got:
                changes.append(f"{kind}[{name}]: missing from the new report")
                continue
            if name not in expected[kind]:
                changes.append(f"{kind}[{name}]: new, not in expected_metrics.json")
                continue
            want, loose, have = expected[kind][name], tolerant.get(name, {}), got[name]
            if not EXACT:
                loose = {**{f: _across(f, v) for f, v in want.items() if f in ACROSS_CPUS and isinstance(v, (int, float))},
                         **{f: _across(f, b["value"]) for f, b in loose.items() if f in ACROSS_CPUS}}
            for field in sorted(want.keys() | loose.keys() | have.keys()):
                where, value = f"{kind}[{name}].{field}", have.get(field, "<missing>")
                if field in loose:
                    bound = loose[field]
                    if not isinstance(value, (int, float)) or abs(value - bound["value"]) > bound["tolerance"]:
                        changes.append(f"{where}: expected {bound['value']!r} ± {bound['tolerance']}, got {value!r}")
                elif field not in want:
                    changes.append(f"{where}: new field, got {value!r}")
                elif not _same(want[field], value):
                    changes.append(f"{where}: expected {want[field]!r}, got {value!r}")
    return changes


@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_example_recipe_produces_the_recorded_figures(recipe, example_run):
    if recipe == "tiny_sww.yaml":
        shared_model("tiny_sww/str_ww_ref_model.h5")
    out, result = example_run(recipe)
    assert result.returncode == 0, result.stderr + result.stdout
    changes = _changes(EXPECTED[recipe], json.loads((out / "report.json").read_text()))
    assert not changes, f"{recipe} no longer produces the recorded figures:\n  " + "\n  ".join(changes)
