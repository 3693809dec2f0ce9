"""`export: {c_array: true}`: the final model as C++ source to flash with TFLite Micro.

A microcontroller has no file system: TFLM's examples compile the `.tflite` into the firmware as an
aligned `const unsigned char[]` (their `generate_cc_arrays.py`), and size the tensor arena with a
constant. `write_c_array` writes the same pair beside the model, from the file's bytes:

- `model_data.h`: `g_model_data_len` (the bytes), `kTensorArenaSize` (the smallest arena TFLM
  allocated the model in, `edgekit.runtimes.tflm`) and the array's `extern` declaration;
- `model_data.cc`: `alignas(16) const unsigned char g_model_data[]`, 12 bytes a line.

The arena is the one the run measured on the `tflm` runtime when `evaluate.runtimes` has it, else
it is measured here; a model with an op TFLM has no kernel for fails (exit 3) naming the op, since
the source would be of no use on a microcontroller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgekit.formats.registry import formats_run_on
from edgekit.gates import MICRO_RUNTIME

HEADER, SOURCE = "model_data.h", "model_data.cc"
ALIGNMENT = 16  # TFLM wants the model 16-byte aligned, as its examples declare it
_PER_LINE = 12


def micro_file(report: dict) -> Optional[dict]:
    """The final artifact that TFLite Micro runs (its first entry), or None."""
    formats = {fmt.name for fmt in formats_run_on(MICRO_RUNTIME)}
    return next((a for a in report.get("artifacts", []) if a.get("role") == "final" and a.get("format") in formats),
                None)


def measured_arena(report: dict, name: str) -> Optional[int]:
    """The arena the run measured for file `name` on TFLite Micro, or None when it did not run there."""
    return next((a.get("arena_bytes") for a in report.get("artifacts", [])
                 if a.get("name") == name and a.get("runtime") == MICRO_RUNTIME and a.get("arena_bytes")), None)


def arena_of(path: Path) -> int:
    """The smallest TFLite Micro arena of the file at `path`, measured now."""
    from edgekit.runtimes import get_runtime

    with get_runtime(MICRO_RUNTIME).open(path) as session:
        return int(session.facts()["arena_bytes"])


def c_sources(model: bytes, arena_bytes: int, origin: str) -> tuple[str, str]:
    """(header, source) text for `model`'s bytes and its arena; `origin` names the file in comments."""
    guard = "EDGEKIT_MODEL_DATA_H_"
    header = (f"// {origin} as a C array for TensorFlow Lite Micro; written by edgekit.\n"
              f"#ifndef {guard}\n#define {guard}\n\n"
              f"// bytes of the model\nconstexpr unsigned int g_model_data_len = {len(model)};\n"
              f"// the smallest tensor arena TFLite Micro allocated this model in (measured by edgekit\n"
              f"// with the 64-bit host build; a 32-bit MCU build needs the same or a little less)\n"
              f"constexpr unsigned int kTensorArenaSize = {int(arena_bytes)};\n\n"
              f"extern const unsigned char g_model_data[];\n\n#endif  // {guard}\n")
    rows = [", ".join(f"0x{byte:02x}" for byte in model[i:i + _PER_LINE]) for i in range(0, len(model), _PER_LINE)]
    source = (f"// {origin} as a C array for TensorFlow Lite Micro; written by edgekit.\n"
              f'#include "{HEADER}"\n\n'
              f"alignas({ALIGNMENT}) const unsigned char g_model_data[] = {{\n"
              + "".join(f"    {row},\n" for row in rows) + "};\n")
    return header, source


def write_c_array(report: dict, run_dir: Path) -> Optional[dict]:
    """Write model_data.h/.cc for the run's TFLite Micro file into `run_dir`; their names, the
    model's bytes and the arena, for the report (None when the run made no such file)."""
    artifact = micro_file(report)
    if artifact is None:
        return None
    path = Path(run_dir) / artifact["name"]
    arena = measured_arena(report, artifact["name"]) or arena_of(path)
    header, source = c_sources(path.read_bytes(), arena, artifact["name"])
    (Path(run_dir) / HEADER).write_text(header, encoding="utf-8")
    (Path(run_dir) / SOURCE).write_text(source, encoding="utf-8")
    return {"model": artifact["name"], "files": [HEADER, SOURCE], "model_bytes": path.stat().st_size,
            "arena_bytes": arena}
