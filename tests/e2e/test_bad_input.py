"""Bad input end to end: every case runs the real CLI and must exit 2 with a message that names the
file and/or the key (or line), print no traceback, and leave the previous run directory untouched.

Each case builds its recipe, data or model in tmp_path, then runs `edgekit compress RECIPE --output
<tmp>/run` where <tmp>/run already holds a previous "good run" (files with known bytes). Cases that
fail while the recipe is validated cost a process start (~1 s); the ones that must load a teacher
with TensorFlow or torch cost a few seconds each.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from tests.helpers import ROOT, make_previous_run, run_edgekit, snapshot

pytestmark = pytest.mark.slow

KERAS_TEACHER = ROOT / "sample_models" / "digits_cnn.keras"
TORCH_TEACHER = ROOT / "sample_models" / "digits_cnn_torch.pt2"
TORCH_STATE_DICT = ROOT / "sample_models" / "digits_cnn_torch.pth"

DIGITS = "{source: digits, scale: 0.0625, calibration_samples: 64, test_samples: 50}"
NPZ = "{source: npz, path: data.npz, scale: 0.0625, calibration_samples: 16}"
INT8 = "{quantize: {method: ptq, precision: int8, io: int8}}"



@pytest.fixture(autouse=True)
def private_stage_cache(tmp_path_factory, monkeypatch):
    """Runs use a stage cache of their own, never the user's ~/.cache/edgekit."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))


# ---------------------------------------------------------------------------------------------
# Building inputs.


def recipe(tmp: Path, *, data: str = DIGITS, teacher: str = f"{{path: '{KERAS_TEACHER}'}}",
           stages: tuple[str, ...] = (INT8,), extra: tuple[str, ...] = (), name: str = "recipe.yaml") -> Path:
    """A recipe whose line numbers are fixed: 1 version, 2 data, 3 teacher, 4 `stages:`, 5.. one
    stage per line, then `extra` lines (top-level keys)."""
    lines = ["version: 1", f"data: {data}", f"teacher: {teacher}", "stages:", *(f"  - {s}" for s in stages), *extra]
    path = tmp / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write(tmp: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def npz(tmp: Path, name: str = "data.npz", *, n_train: int = 60, n_test: int = 20, side: int = 8,
        classes: int = 10, **replace: np.ndarray) -> Path:
    """Digit-like arrays (values 0..16, NHWC) in an .npz; `replace` swaps or drops (None) arrays."""
    gen = np.random.default_rng(0)
    arrays = {
        "x_train": gen.integers(0, 17, (n_train, side, side, 1)).astype(np.float32),
        "y_train": np.arange(n_train) % classes,
        "x_test": gen.integers(0, 17, (n_test, side, side, 1)).astype(np.float32),
        "y_test": np.arange(n_test) % classes,
    }
    arrays.update(replace)
    path = tmp / name
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def junk(path: Path, size: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def truncated_copy(source: Path) -> Callable[[Path], Path]:
    """A real model file cut in half (an interrupted copy)."""
    def make(path: Path) -> Path:
        content = source.read_bytes()
        path.write_bytes(content[: len(content) // 2])
        return path
    return make


def with_nan(value: float) -> np.ndarray:
    x = np.random.default_rng(0).integers(0, 17, (60, 8, 8, 1)).astype(np.float32)
    x[7, 3, 3, 0] = value
    return x


def pickled_torch_module(path: Path) -> Path:
    """torch.save of a whole nn.Module (a pickle that imports classes), written by another process."""
    code = ("import torch, sys; torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), "
            "sys.argv[1])")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, timeout=120)
    return path


def corrupt_keras_zip(path: Path) -> Path:
    """A .keras file is a zip archive: one with a config that is not JSON."""
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "2.15.0"}')
        archive.writestr("config.json", "{this is not json")
        archive.writestr("model.weights.h5", b"\x00" * 64)
    return path


def image_folder(tmp: Path, files: dict[str, bytes]) -> Path:
    root = tmp / "images"
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        (root / rel).write_bytes(content)
    return root


# ---------------------------------------------------------------------------------------------
# The cases.


@dataclass
class Case:
    """`build(tmp, run)` makes the inputs and returns the CLI arguments after the command; unless
    they hold `--output`, `--output <run>` is appended."""

    id: str
    build: Callable[[Path, Path], list[str]]
    expected: tuple[str, ...]
    validate: bool = False  # also rejected by `edgekit validate` (a recipe-level problem)
    env: dict[str, Callable[[Path], str]] = field(default_factory=dict)
    xfail: Optional[str] = None  # strict xfail, with the fix that is due
    xfail_in: tuple[str, ...] = ("compress", "validate")  # the commands the xfail applies to


def _args(path: Path, *more: str) -> list[str]:
    return [str(path), *more]


def _recipe(**kw) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: _args(recipe(tmp, **kw))


def _text(text: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, run: _args(write(tmp, text))


def _npz_case(**arrays) -> Callable[[Path, Path], list[str]]:
    def build(tmp, run):
        npz(tmp, **arrays)
        return _args(recipe(tmp, data=NPZ))
    return build


def _teacher_file(filename: str, make: Callable[[Path], Path], stages: tuple[str, ...] = (INT8,)):
    def build(tmp, run):
        make(tmp / filename)
        return _args(recipe(tmp, teacher=f"{{path: {filename}}}", stages=stages))
    return build


def _output_under_a_file(tmp: Path, run: Path) -> list[str]:
    (tmp / "not_a_dir").write_text("a regular file\n")
    return _args(recipe(tmp), "--output", str(tmp / "not_a_dir" / "run"))


def _output_is_recipe_folder(tmp: Path, run: Path) -> list[str]:
    # the recipe lives in the previous run's folder, and --output names that folder
    return _args(recipe(run, name="my_recipe.yaml"), "--output", str(run))


def _image_folder_case(files: dict[str, bytes]):
    def build(tmp, run):
        image_folder(tmp, files)
        return _args(recipe(tmp, data="{source: image_folder, path: images, image_size: [8, 8], "
                                      "calibration_samples: 2}"))
    return build


def _missing_teacher_in_bracketed_folder(tmp: Path, run: Path) -> list[str]:
    (tmp / "models [v2]").mkdir()
    return _args(recipe(tmp, teacher="{path: 'models [v2]/teacher.keras'}"))


CASES = [
    # --- malformed YAML ------------------------------------------------------------------------
    Case("yaml-bad-indentation", _text("""
        version: 1
        data:
          source: digits
            scale: 0.0625
        teacher:
          path: sample.keras
        """), ("recipe.yaml", "invalid YAML", "line 4, column"), validate=True),
    Case("yaml-unclosed-bracket", _text("""
        version: 1
        teacher: {path: sample.keras}
        export:
          formats: [tflite, onnx
        gates:
          min_accuracy: 0.9
        """), ("recipe.yaml", "invalid YAML", "line 5, column"), validate=True),
    # --- unknown keys ----------------------------------------------------------------------------
    Case("unknown-top-level-key", _recipe(extra=("gate: {min_accuracy: 0.9}",)),
         ("recipe.yaml", "line 6", "unknown key 'gate'", "did you mean 'gates'"), validate=True),
    Case("unknown-data-key", _recipe(data="{source: digits, calibration_sample: 64}"),
         ("line 2", "unknown key 'calibration_sample' in data", "did you mean 'calibration_samples'"), validate=True),
    Case("unknown-stage-key", _recipe(stages=("{prune: {sparsty: 0.5}}", INT8)),
         ("line 5", "unknown key 'sparsty' in stages[0].prune", "did you mean 'sparsity'"), validate=True),
    Case("misspelled-stage-name", _recipe(stages=("{prune: {sparsity: 0.5}}", "{quantise: {precision: int8}}")),
         ("line 6", "unknown key 'quantise' in stages[1]", "did you mean 'quantize'"), validate=True),
    # --- wrong types -----------------------------------------------------------------------------
    Case("epochs-not-a-number", _recipe(teacher="{build: {arch: cnn_tiny}, train: {epochs: ten}}"),
         ("line 3", "teacher.train.epochs", "'ten'"), validate=True),
    Case("formats-a-string", _recipe(extra=("export: {formats: tflite}",)),
         ("line 6", "export.formats", "valid list", "'tflite'"), validate=True),
    Case("per-channel-maybe", _recipe(stages=("{quantize: {precision: int8, per_channel: maybe}}",)),
         ("line 5", "stages[0].quantize.per_channel", "'maybe'"), validate=True),
    # --- out of range ----------------------------------------------------------------------------
    Case("sparsity-above-1", _recipe(stages=("{prune: {sparsity: 1.5}}", INT8)),
         ("line 5", "stages[0].prune.sparsity", "less than 1", "1.5"), validate=True),
    Case("negative-epochs", _recipe(stages=("{distill: {student: {arch: cnn_tiny}, epochs: -3}}", INT8)),
         ("line 5", "stages[0].distill.epochs", "greater than 0", "-3"), validate=True),
    Case("temperature-zero", _recipe(stages=("{distill: {student: {arch: cnn_tiny}, temperature: 0}}", INT8)),
         ("line 5", "stages[0].distill.temperature", "greater than 0"), validate=True),
    Case("validation-split-1", _recipe(data="{source: digits, validation_split: 1.0}"),
         ("line 2", "data.validation_split", "less than 1"), validate=True),
    Case("alpha-2", _recipe(stages=("{distill: {student: {arch: cnn_tiny}, alpha: 2}}", INT8)),
         ("line 5", "stages[0].distill.alpha", "less than or equal to 1"), validate=True),
    # --- recipe shape ----------------------------------------------------------------------------
    Case("duplicate-key", _recipe(extra=("data: {source: npz, path: elsewhere.npz}",)),
         ("recipe.yaml", "line 6", "'data'", "line 2"), validate=True),
    Case("negative-seed", _recipe(extra=("seed: -1",)), ("line 6", "seed"), validate=True),
    Case("missing-version", _text(f"""
        name: no-version
        teacher: {{path: '{KERAS_TEACHER}'}}
        """), ("recipe.yaml", "missing 'version: 1'"), validate=True),
    Case("empty-recipe", _text(""), ("recipe.yaml", "the recipe is empty"), validate=True),
    Case("recipe-is-a-list", _text("- version: 1\n- teacher: x.keras\n"),
         ("recipe.yaml", "YAML mapping", "not a list"), validate=True),
    Case("missing-recipe-file", lambda tmp, run: [str(tmp / "nowhere.yaml")],
         ("nowhere.yaml", "no such recipe file"), validate=True),
    # --- teacher files ---------------------------------------------------------------------------
    Case("missing-teacher", _recipe(teacher="{path: missing.keras}"),
         ("missing.keras", "does not exist", "teacher.path"), validate=True),
    Case("teacher-unknown-suffix", _teacher_file("teacher.onnx", junk),
         ("recipe.yaml line 3", "teacher.path", "teacher.onnx", "cannot tell the framework", "teacher.framework"),
         validate=True),
    Case("corrupt-h5", _teacher_file("teacher.h5", junk),
         ("teacher.h5", "cannot load the Keras model", "teacher.path")),
    Case("corrupt-keras", _teacher_file("teacher.keras", corrupt_keras_zip),
         ("teacher.keras", "cannot load the Keras model", "teacher.path")),
    Case("truncated-keras", _teacher_file("teacher.keras", truncated_copy(KERAS_TEACHER)),
         ("teacher.keras", "damaged or truncated .keras archive", "teacher.path")),
    Case("corrupt-pt2", _teacher_file("teacher.pt2", junk),
         ("teacher.pt2", "not a file written by torch", "teacher.path")),
    Case("corrupt-pt", _teacher_file("teacher.pt", junk),
         ("teacher.pt", "not a file written by torch", "teacher.path")),
    Case("truncated-pt2", _teacher_file("teacher.pt2", truncated_copy(TORCH_TEACHER)),
         ("teacher.pt2", "damaged or truncated zip archive", "teacher.path")),
    Case("torch-state-dict-without-factory", _recipe(teacher=f"{{path: '{TORCH_STATE_DICT}'}}"),
         ("digits_cnn_torch.pth", "state_dict", "teacher.factory")),
    Case("pickled-torch-module", _teacher_file("whole_module.pt", pickled_torch_module),
         ("whole_module.pt", "pickled Python object", "arbitrary code", "torch.export.save")),
    Case("teacher-path-with-brackets", _missing_teacher_in_bracketed_folder,
         ("models [v2]/teacher.keras", "does not exist")),
    Case("student-path-missing", _recipe(stages=("{distill: {student: {path: student.keras}, epochs: 1}}", INT8)),
         ("student.keras", "does not exist", "distill.student.path"), validate=True),
    Case("teacher-path-with-closing-tag", _recipe(teacher="{path: 'models/[/v2]/teacher.keras'}"),
         ("models/[/v2]/teacher.keras", "does not exist")),
    # --- data ------------------------------------------------------------------------------------
    Case("npz-missing", _recipe(data=NPZ), ("data.path", "data.npz", "does not exist")),
    Case("npz-empty-arrays", _npz_case(x_train=np.zeros((0, 8, 8, 1), np.float32), y_train=np.zeros(0, np.int64)),
         ("data.path", "data.npz", "train split is empty")),
    Case("npz-nan", _npz_case(x_train=with_nan(np.nan)), ("data.npz", "x_train holds 1 NaN or infinite")),
    Case("npz-inf", _npz_case(x_train=with_nan(np.inf)), ("data.npz", "x_train holds 1 NaN or infinite")),
    Case("npz-length-mismatch", _npz_case(y_test=np.arange(19) % 10),
         ("data.npz", "x_test has 20 samples but y_test has 19", "data.keys.y_test")),
    Case("npz-missing-key", _npz_case(x_test=None),
         ("data.npz", "no array 'x_test'", "data.keys.x_test", "x_train, y_train, y_test")),
    Case("npz-not-an-npz", lambda tmp, run: (junk(tmp / "data.npz"), _args(recipe(tmp, data=NPZ)))[1],
         ("data.npz", "not an .npz file")),
    Case("npz-path-is-a-folder", lambda tmp, run: ((tmp / "data.npz").mkdir(), _args(recipe(tmp, data=NPZ)))[1],
         ("data.path", "data.npz", "is a directory")),
    Case("scale-is-nan", _recipe(data="{source: digits, scale: .nan}"), ("data.scale is nan", "finite")),
    Case("labels-file-missing", _recipe(data="{source: digits, labels: names.txt}"),
         ("data.labels", "names.txt", "does not exist")),
    Case("data-model-shape-mismatch", _npz_case(side=9),
         ("digits_cnn.keras", "expects samples of shape [8, 8, 1]", "[9, 9, 1]", "data.keys")),
    Case("labels-beyond-model-outputs", _npz_case(classes=13),
         ("digits_cnn.keras", "class id 12", "only 10 outputs")),
    Case("calibration-larger-than-data", _recipe(data="{source: digits, calibration_samples: 5000}"),
         ("data.calibration_samples is 5000", "train samples are available")),
    Case("image-folder-without-images", _image_folder_case({"cat/notes.txt": b"not an image\n"}),
         ("data.path", "no images found", "images")),
    Case("image-folder-files-not-images", _image_folder_case({"cat/001.png": b"plain text, not a PNG\n",
                                                              "dog/002.png": b"\x89PNG broken"}),
         ("001.png", "Pillow cannot read this image")),
    Case("keras-source-empty-cache", _recipe(data="{source: keras, name: mnist, calibration_samples: 16}"),
         ("data.source keras", "mnist.npz", "does not download", "KERAS_HOME"),
         env={"KERAS_HOME": lambda tmp: str(tmp / "keras_home")}),
    # --- unsupported combinations ----------------------------------------------------------------
    Case("io-int8-with-float16", _recipe(stages=("{quantize: {precision: float16, io: int8}}",)),
         ("line 5", "io: int8 needs precision: int8"), validate=True),
    Case("qat-with-dynamic", _recipe(stages=("{quantize: {method: qat, precision: dynamic}}",)),
         ("line 5", "method: qat", "precision: int8"), validate=True),
    Case("cluster-with-torch-teacher", _recipe(teacher=f"{{path: '{TORCH_TEACHER}'}}",
                                               stages=("{cluster: {clusters: 8}}", INT8)),
         ("recipe.yaml line 5", "stages[0]", "'cluster' stage is not available for torch"), validate=True),
    Case("factory-with-keras-teacher", _recipe(teacher=f"{{path: '{KERAS_TEACHER}', factory: 'pkg.mod:build'}}"),
         ("recipe.yaml line 3", "teacher.factory", "torch teachers only"), validate=True),
    Case("custom-objects-without-trust-code",
         _recipe(teacher=f"{{path: '{KERAS_TEACHER}', custom_objects: my_layers}}"),
         ("recipe.yaml line 3", "teacher.custom_objects", "teacher.trust_code: true"), validate=True),
    Case("custom-objects-module-not-found",
         _recipe(teacher=f"{{path: '{KERAS_TEACHER}', custom_objects: no_such_layers_module, trust_code: true}}"),
         ("recipe.yaml line 3", "teacher.custom_objects", "cannot find the Python module 'no_such_layers_module'",
          "PYTHONPATH"), validate=True),
    Case("two-quantize-stages", _recipe(stages=(INT8, "{quantize: {precision: dynamic}}")),
         ("line 4", "more than one quantize stage"), validate=True),
    Case("quantize-not-last", _recipe(stages=(INT8, "{prune: {sparsity: 0.5}}")),
         ("line 4", "quantize must be the last stage"), validate=True),
    # --- output directory ------------------------------------------------------------------------
    Case("output-parent-is-a-file", _output_under_a_file, ("not_a_dir", "cannot create the output directory")),
    Case("output-is-the-recipe-folder", _output_is_recipe_folder,
         ("my_recipe.yaml", "a finished run would replace", "--output")),
    Case("output-is-a-file", lambda tmp, run: (tmp / "out.txt").write_text("x") and _args(
        recipe(tmp), "--output", str(tmp / "out.txt")), ("out.txt", "not a directory")),
    Case("output-is-root", lambda tmp, run: _args(recipe(tmp), "--output", "/"),
         ("refusing to use this directory", "/: ")),
    # --- overrides -------------------------------------------------------------------------------
    Case("set-bad-list-index", lambda tmp, run: _args(recipe(tmp), "--set", "stages.5.quantize.io=int8"),
         ("--set stages.5.quantize.io", "'5' is not an index", "1 items"), validate=True),
]


def _param(case: Case, command: str):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail and command in case.xfail_in else []
    return pytest.param(case, id=case.id, marks=marks)


# ---------------------------------------------------------------------------------------------
# Running and checking.






def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def _prepare(case: Case, tmp_path: Path, monkeypatch) -> tuple[Path, list[str]]:
    run = tmp_path / "run"
    make_previous_run(run)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value(tmp_path))
    return run, case.build(tmp_path, run)


def assert_rejected(result, expected: tuple[str, ...]) -> None:
    everything = result.stdout + result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in everything, everything
    for text in expected:
        assert text in result.stderr, f"{text!r} missing from the message:\n{result.stderr}"


@pytest.mark.parametrize("case", [_param(c, "compress") for c in CASES])
def test_compress_rejects_bad_input_and_keeps_the_previous_run(case: Case, tmp_path, monkeypatch):
    run, args = _prepare(case, tmp_path, monkeypatch)
    if "--output" not in args:
        args += ["--output", str(run)]
    before = snapshot(run)

    result = run_edgekit("compress", *args, "-q", cwd=tmp_path, timeout=300)

    assert_rejected(result, case.expected)
    assert snapshot(run) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", [_param(c, "validate") for c in CASES if c.validate])
def test_validate_rejects_the_same_recipes(case: Case, tmp_path, monkeypatch):
    _, args = _prepare(case, tmp_path, monkeypatch)

    result = run_edgekit("validate", *args, cwd=tmp_path)

    assert_rejected(result, case.expected)


def test_debug_shows_the_traceback_of_a_bad_input(tmp_path):
    run = tmp_path / "run"
    make_previous_run(run)
    before = snapshot(run)
    path = recipe(tmp_path, teacher="{path: missing.keras}")

    result = run_edgekit("compress", str(path), "--output", str(run), "-q", "--debug", cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "Traceback" in result.stderr and "InputError" in result.stderr
    assert "missing.keras" in result.stderr
    assert snapshot(run) == before
    assert leftovers(tmp_path) == []


def test_the_table_covers_at_least_thirty_cases():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
