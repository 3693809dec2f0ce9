"""edgekit.recipe: the v1 recipe contract (DESIGN.md) — defaults, readable errors, overrides, round trips."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from edgekit.errors import RecipeError
from edgekit.recipe import (
    GatesConfig,
    QuantizeConfig,
    apply_override,
    load_recipe,
    parse_recipe,
    resolved_yaml,
)

MINIMAL = """\
version: 1
teacher:
  path: model.keras
"""


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, overrides=(), name: str = "recipe.yaml"):
    return load_recipe(write(tmp_path, text, name), overrides=list(overrides))


def error_of(tmp_path: Path, text: str, overrides=()) -> str:
    with pytest.raises(RecipeError) as excinfo:
        load(tmp_path, text, overrides)
    assert excinfo.value.exit_code == 2
    return str(excinfo.value)


def with_stage(stage_yaml: str, extra: str = "") -> str:
    return MINIMAL + "stages:\n" + textwrap.indent(textwrap.dedent(stage_yaml), "  ") + extra


# ---------------------------------------------------------------------------------------------
# Defaults


def test_minimal_recipe_fills_the_documented_defaults(tmp_path):
    recipe = load(tmp_path, MINIMAL)

    assert recipe.version == 1
    assert recipe.task == "classification"
    assert recipe.seed == 0
    assert recipe.stages == []
    assert recipe.quantize is None
    assert recipe.data.source == "digits"
    assert recipe.data.layout == "nhwc"
    assert recipe.data.validation_split == 0.1
    assert recipe.data.calibration_samples == 256
    assert recipe.data.keys.x_train == "x_train" and recipe.data.keys.y_test == "y_test"
    assert recipe.teacher.path == "model.keras"
    assert recipe.export.formats == ["tflite", "onnx"]
    assert recipe.export.sparse is False and recipe.export.bundle is True
    assert recipe.evaluate.runtimes == ["litert", "onnxruntime"]
    latency = recipe.evaluate.latency
    assert (latency.warmup, latency.runs, latency.threads, latency.batch) == (10, 100, 1, 1)
    assert recipe.gates.model_dump() == {
        "max_size": None, "max_accuracy_drop": None, "min_accuracy": None,
        "max_latency_ms": None, "min_compression": None, "max_arena": None, "max_flash": None,
    }


@pytest.mark.parametrize(
    ("formats", "runtimes"),
    [("[tflite]", ["litert"]), ("[onnx]", ["onnxruntime"]), ("[onnx, tflite]", ["onnxruntime", "litert"])],
)
def test_evaluate_runtimes_default_to_the_runtimes_of_the_exported_formats(tmp_path, formats, runtimes):
    recipe = load(tmp_path, MINIMAL + f"export:\n  formats: {formats}\n")

    assert recipe.evaluate.runtimes == runtimes


def test_explicit_runtimes_may_be_a_subset_of_the_exported_formats(tmp_path):
    recipe = load(tmp_path, MINIMAL + "evaluate:\n  runtimes: [litert]\n")

    assert recipe.evaluate.runtimes == ["litert"]
    assert recipe.export.formats == ["tflite", "onnx"]


@pytest.mark.parametrize(("precision", "io"), [("int8", "int8"), ("dynamic", "float32"), ("float16", "float32")])
def test_quantize_io_defaults_from_precision(tmp_path, precision, io):
    recipe = load(tmp_path, with_stage(f"- quantize: {{precision: {precision}}}\n"))

    assert recipe.quantize.precision == precision
    assert recipe.quantize.io == io
    assert recipe.quantize.method == "ptq"
    assert recipe.quantize.per_channel is True
    assert recipe.quantize.epochs is None


def test_qat_epochs_default_to_two_and_can_be_set(tmp_path):
    default = load(tmp_path, with_stage("- quantize: {method: qat}\n"))
    explicit = load(tmp_path, with_stage("- quantize: {method: qat, epochs: 5}\n"))

    assert default.quantize.epochs == 2
    assert default.stages[0].label == "quantize.qat"
    assert explicit.quantize.epochs == 5


@pytest.mark.parametrize("stage", ["- quantize\n", "- quantize:\n", "- quantize: {}\n"])
def test_a_stage_without_a_body_takes_the_defaults(tmp_path, stage):
    recipe = load(tmp_path, with_stage(stage))

    assert recipe.stages[0].kind == "quantize"
    assert recipe.stages[0].label == "quantize.ptq"
    assert recipe.quantize.model_dump() == QuantizeConfig().model_dump()
    assert recipe.quantize.io == "int8"


def test_stage_kind_label_and_config(tmp_path):
    recipe = load(tmp_path, with_stage("- distill: {epochs: 3}\n- prune: {sparsity: 0.8}\n- quantize: {}\n"))

    assert [s.kind for s in recipe.stages] == ["distill", "prune", "quantize"]
    assert [s.label for s in recipe.stages] == ["distill", "prune", "quantize.ptq"]
    assert recipe.stages[1].config.sparsity == 0.8
    assert recipe.stages[0].model_dump()["distill"]["epochs"] == 3
    assert list(recipe.stages[0].model_dump()) == ["distill"]


# ---------------------------------------------------------------------------------------------
# Unknown keys and malformed YAML


@pytest.mark.parametrize(
    ("text", "key", "suggestion", "line"),
    [
        (MINIMAL + "data:\n  calibraton_samples: 100\n", "calibraton_samples", "calibration_samples", 5),
        (MINIMAL + "stages:\n  - quantise: {precision: int8}\n", "quantise", "quantize", 5),
        (MINIMAL + "gatess:\n  max_size: 64KB\n", "gatess", "gates", 4),
        (MINIMAL + "stages:\n  - quantize:\n      presicion: int8\n", "presicion", "precision", 6),
        (MINIMAL + "evaluate:\n  latency: {warmpu: 3}\n", "warmpu", "warmup", 5),
        ("version: 1\nteacher:\n  build: {arch: mlp, widht: 2}\n", "widht", "width", 3),
    ],
)
def test_unknown_keys_are_errors_with_a_hint_and_the_line(tmp_path, text, key, suggestion, line):
    message = error_of(tmp_path, text)

    assert f"unknown key '{key}'" in message
    assert f"did you mean '{suggestion}'" in message
    assert f"line {line}:" in message
    assert "recipe.yaml" in message


def test_unknown_key_without_a_close_match_lists_the_known_keys(tmp_path):
    message = error_of(tmp_path, MINIMAL + "gates:\n  banana: 1\n")

    assert "unknown key 'banana' in gates" in message
    assert "did you mean" not in message
    assert "known keys: max_size, max_accuracy_drop, min_accuracy, max_latency_ms, min_compression" in message


def test_every_problem_is_listed(tmp_path):
    message = error_of(tmp_path, MINIMAL + "seed: x\ngates:\n  banana: 1\n")

    assert "2 problem(s)" in message
    assert "seed" in message and "banana" in message


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: 1\nteacher:\n  path: a.keras\n bad: 1\n", "line 4, column 2"),
        ("version: 1\nteacher:\n  path: [a.keras\n", "line 4, column 1"),
    ],
)
def test_malformed_yaml_reports_line_and_column(tmp_path, text, where):
    message = error_of(tmp_path, text)

    assert "invalid YAML" in message
    assert where in message
    assert "recipe.yaml" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "empty"), ("# only a comment\n", "empty"), ("- version\n- teacher\n", "mapping"), ("42\n", "mapping")],
)
def test_a_recipe_must_be_a_non_empty_mapping(tmp_path, text, fragment):
    assert fragment in error_of(tmp_path, text)


def test_missing_recipe_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(tmp_path / "nope.yaml")

    assert "nope.yaml" in str(excinfo.value)
    assert "no such recipe file" in str(excinfo.value)


# ---------------------------------------------------------------------------------------------
# Values out of range and wrong types: the message names the key path


@pytest.mark.parametrize(
    ("text", "path", "bad"),
    [
        (with_stage("- prune: {sparsity: 1.5}\n"), "stages[0].prune.sparsity", "1.5"),
        (with_stage("- prune: {sparsity: 0}\n"), "stages[0].prune.sparsity", "0"),
        (with_stage("- prune: {epochs: -1}\n"), "stages[0].prune.epochs", "-1"),
        (with_stage("- distill: {temperature: 0}\n"), "stages[0].distill.temperature", "0"),
        (with_stage("- distill: {alpha: 1.5}\n"), "stages[0].distill.alpha", "1.5"),
        (with_stage("- cluster: {clusters: 1}\n"), "stages[0].cluster.clusters", "1"),
        (with_stage("- prune: {}\n- quantize: {method: qat, epochs: 0}\n"), "stages[1].quantize.epochs", "0"),
        (MINIMAL + "data:\n  validation_split: 1.0\n", "data.validation_split", "1.0"),
        (MINIMAL + "data:\n  calibration_samples: 0\n", "data.calibration_samples", "0"),
        (MINIMAL + "gates:\n  min_accuracy: 1.5\n", "gates.min_accuracy", "1.5"),
        (MINIMAL + "gates:\n  max_accuracy_drop: -0.1\n", "gates.max_accuracy_drop", "-0.1"),
        (MINIMAL + "evaluate:\n  latency: {runs: 0}\n", "evaluate.latency.runs", "0"),
    ],
)
def test_out_of_range_values_name_the_key_path(tmp_path, text, path, bad):
    message = error_of(tmp_path, text)

    assert f"{path}:" in message
    assert f"got {bad}" in message


def test_out_of_range_error_points_at_the_line_of_the_stage(tmp_path):
    message = error_of(tmp_path, with_stage("- prune: {sparsity: 1.5}\n"))

    assert "line 5: stages[0].prune.sparsity" in message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (MINIMAL + "seed: abc\n", "seed"),
        (MINIMAL + "task: detection\n", "task"),
        (MINIMAL + "export:\n  formats: tflite\n", "export.formats"),
        (MINIMAL + "export:\n  formats: [tflite, pb]\n", "export.formats[1]"),
        (MINIMAL + "export:\n  sparse: maybe\n", "export.sparse"),
        (MINIMAL + "data:\n  source: csv\n", "data.source"),
        (with_stage("- quantize: {per_channel: sometimes}\n"), "stages[0].quantize.per_channel"),
        (with_stage("- quantize: {precision: int4}\n"), "stages[0].quantize.precision"),
        ("version: 1\nteacher:\n  build: {arch: vgg16}\n", "teacher.build.arch"),
        (MINIMAL + "evaluate:\n  latency: {threads: two}\n", "evaluate.latency.threads"),
    ],
)
def test_wrong_types_name_the_key_path(tmp_path, text, path):
    assert f"{path}:" in error_of(tmp_path, text)


def test_a_format_listed_twice_is_rejected(tmp_path):
    assert "lists a format twice" in error_of(tmp_path, MINIMAL + "export:\n  formats: [tflite, tflite]\n")


def test_a_stage_is_a_mapping_with_exactly_one_key(tmp_path):
    message = error_of(tmp_path, with_stage("- {prune: {}, cluster: {}}\n"))

    assert "exactly one key" in message
    assert "stages[0]" in message


# ---------------------------------------------------------------------------------------------
# Cross-field rules


@pytest.mark.parametrize(
    "stage",
    ["- quantize: {io: int8, precision: float16}\n", "- quantize: {io: uint8, precision: dynamic}\n"],
)
def test_integer_io_needs_int8_precision(tmp_path, stage):
    message = error_of(tmp_path, with_stage(stage))

    assert "stages[0].quantize" in message
    assert "needs precision: int8" in message
    assert "io: float32" in message


def test_float32_io_is_allowed_with_int8_precision(tmp_path):
    recipe = load(tmp_path, with_stage("- quantize: {precision: int8, io: float32}\n"))

    assert recipe.quantize.io == "float32"


def test_ptq_with_epochs_is_rejected(tmp_path):
    message = error_of(tmp_path, with_stage("- quantize: {method: ptq, epochs: 2}\n"))

    assert "stages[0].quantize" in message
    assert "quantize.epochs applies only to method: qat" in message


def test_qat_needs_int8_precision(tmp_path):
    assert "use precision: int8" in error_of(tmp_path, with_stage("- quantize: {method: qat, precision: dynamic}\n"))


def test_keep_float_and_overrides_are_read_in_order(tmp_path):
    recipe = load(tmp_path, with_stage("- quantize: {keep_float: [head], overrides: {'block\\d+': int16x8}}\n"))

    assert recipe.quantize.layer_patterns() == [("head", "float"), ("block\\d+", "int16x8")]
    assert recipe.quantize.resolve_layers(["stem", "block1", "block12", "head"]) == {
        "head": "float", "block1": "int16x8", "block12": "int16x8"}
    assert "int16x8: block\\d+, float: head" in recipe.quantize.summary()


@pytest.mark.parametrize("stage, expected", [
    ("{method: qat, keep_float: [head]}", "quantize.keep_float applies to method: ptq"),
    ("{precision: dynamic, overrides: {head: float}}", "quantize.overrides applies to precision: int8 or int16x8"),
    ("{precision: int16x8, overrides: {head: int16x8}}", "'head: int16x8' is the plan's own precision"),
    ("{keep_float: ['conv(']}", "'conv(' is not a regular expression"),
    ("{overrides: {head: int4}}", "stages[0].quantize.overrides.head"),
    ("{precision: int16x8, io: int8}", "io: int8 needs precision: int8"),
])
def test_a_per_layer_precision_the_plan_cannot_have_is_rejected(tmp_path, stage, expected):
    assert expected in error_of(tmp_path, with_stage(f"- quantize: {stage}\n"))


@pytest.mark.parametrize("calibration", ["percentile", "entropy"])
def test_a_calibration_rule_reaches_the_plan(tmp_path, calibration):
    recipe = load(tmp_path, with_stage(f"- quantize: {{precision: int16x8, calibration: {calibration}}}\n"))

    assert recipe.quantize.plan().calibration == calibration
    assert f"{calibration} ranges" in recipe.quantize.summary()
    assert load(tmp_path, with_stage("- quantize: {}\n")).quantize.plan().calibration == "minmax"


@pytest.mark.parametrize("stage, expected", [
    ("{method: qat, calibration: percentile}", "quantization-aware training learns its ranges"),
    ("{precision: dynamic, calibration: entropy}", "precision: dynamic calibrates nothing"),
    ("{calibration: kl}", "stages[0].quantize.calibration"),
])
def test_a_calibration_rule_the_plan_cannot_use_is_rejected(tmp_path, stage, expected):
    assert expected in error_of(tmp_path, with_stage(f"- quantize: {stage}\n"))


def test_two_quantize_stages_are_rejected(tmp_path):
    message = error_of(tmp_path, with_stage("- quantize: {}\n- quantize: {precision: dynamic}\n"))

    assert "more than one quantize stage" in message


def test_quantize_must_be_the_last_stage(tmp_path):
    message = error_of(tmp_path, with_stage("- quantize: {}\n- prune: {}\n"))

    assert "quantize must be the last stage" in message


def test_min_accuracy_is_rejected_for_regression(tmp_path):
    message = error_of(tmp_path, MINIMAL + "task: regression\ngates:\n  min_accuracy: 0.9\n")

    assert "gates.min_accuracy applies to classification" in message
    assert "max_accuracy_drop" in message


def test_regression_accepts_max_accuracy_drop(tmp_path):
    recipe = load(tmp_path, MINIMAL + "task: regression\ngates:\n  max_accuracy_drop: 0.05\n")

    assert recipe.task == "regression"
    assert recipe.gates.max_accuracy_drop == 0.05


def test_runtime_without_an_exported_format_is_rejected(tmp_path):
    message = error_of(tmp_path, MINIMAL + "export:\n  formats: [tflite]\nevaluate:\n  runtimes: [litert, onnxruntime]\n")

    assert "evaluate.runtimes lists ['onnxruntime']" in message
    assert "export.formats ['tflite']" in message


def test_latency_gate_needs_litert(tmp_path):
    message = error_of(tmp_path, MINIMAL + "export:\n  formats: [onnx]\ngates:\n  max_latency_ms: 2\n")

    assert "gates.max_latency_ms" in message


@pytest.mark.parametrize("gate", ["max_arena", "max_flash"])
def test_microcontroller_gates_need_tflite_micro_among_the_runtimes(tmp_path, gate):
    message = error_of(tmp_path, MINIMAL + f"gates:\n  {gate}: 64KB\n")
    recipe = load(tmp_path, MINIMAL + f"evaluate:\n  runtimes: [litert, tflm]\ngates:\n  {gate}: 64KB\n")

    assert f"gates.{gate}" in message and "add tflm to evaluate.runtimes" in message
    assert getattr(recipe.gates, gate) == 64_000


def test_compression_gate_needs_tflite(tmp_path):
    message = error_of(tmp_path, MINIMAL + "export:\n  formats: [onnx]\ngates:\n  min_compression: 2\n")

    assert "gates.min_compression" in message


def test_teacher_with_both_path_and_build_is_rejected(tmp_path):
    message = error_of(tmp_path, "version: 1\nteacher:\n  path: a.keras\n  build: {arch: mlp}\n")

    assert "teacher:" in message
    assert "not both" in message


def test_teacher_with_neither_path_nor_build_is_rejected(tmp_path):
    message = error_of(tmp_path, "version: 1\nteacher: {}\n")

    assert "teacher needs teacher.path" in message


def test_missing_teacher_is_rejected(tmp_path):
    message = error_of(tmp_path, "version: 1\n")

    assert "teacher" in message
    assert "Field required" in message


def test_teacher_train_needs_build(tmp_path):
    assert "teacher.train applies to a teacher built" in error_of(
        tmp_path, "version: 1\nteacher:\n  path: a.keras\n  train: {epochs: 1}\n"
    )


def test_teacher_build_with_train_is_accepted(tmp_path):
    recipe = load(tmp_path, "version: 1\nteacher:\n  build: {arch: cnn_tiny, width: 0.5}\n  train: {epochs: 2}\n")

    assert recipe.teacher.build.arch == "cnn_tiny"
    assert recipe.teacher.build.width == 0.5
    assert recipe.teacher.train.epochs == 2
    assert recipe.teacher.train.batch_size == 32


def test_missing_version_is_rejected(tmp_path):
    message = error_of(tmp_path, "teacher:\n  path: a.keras\n")

    assert "missing 'version: 1'" in message
    assert "recipe.yaml" in message


def test_unknown_version_is_rejected(tmp_path):
    assert "version" in error_of(tmp_path, "version: 2\nteacher:\n  path: a.keras\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (MINIMAL + "data:\n  source: npz\n", "needs data.path"),
        (MINIMAL + "data:\n  source: image_folder\n  path: imgs\n", "needs data.image_size"),
        (MINIMAL + "data:\n  source: keras\n", "needs data.name"),
        (MINIMAL + "data:\n  name: mnist\n", "data.name applies only"),
    ],
)
def test_data_source_requirements(tmp_path, text, fragment):
    assert fragment in error_of(tmp_path, text)


# ---------------------------------------------------------------------------------------------
# --set overrides


def test_override_with_a_list_index_path(tmp_path):
    recipe = load(tmp_path, with_stage("- quantize: {precision: int8}\n"),
                  overrides=["stages.0.quantize.precision=dynamic"])

    assert recipe.quantize.precision == "dynamic"
    assert recipe.quantize.io == "float32"  # the io default follows the overridden precision


@pytest.mark.parametrize(
    ("assignment", "check"),
    [
        ("seed=7", lambda r: r.seed == 7),
        ("gates.max_accuracy_drop=0.02", lambda r: r.gates.max_accuracy_drop == 0.02),
        ("gates.max_size=64KiB", lambda r: r.gates.max_size == 65536),
        ("export.formats=[tflite]", lambda r: r.export.formats == ["tflite"] and r.evaluate.runtimes == ["litert"]),
        ("export.bundle=false", lambda r: r.export.bundle is False),
        ("data.labels=[zero, one]", lambda r: r.data.labels == ["zero", "one"]),
        ("teacher.path=other.h5", lambda r: r.teacher.path == "other.h5"),
        ("name=renamed", lambda r: r.name == "renamed"),
    ],
)
def test_override_values_are_parsed_as_yaml(tmp_path, assignment, check):
    recipe = load(tmp_path, MINIMAL, overrides=[assignment])

    assert check(recipe)


def test_overrides_apply_in_order(tmp_path):
    recipe = load(tmp_path, MINIMAL, overrides=["seed=1", "seed=2"])

    assert recipe.seed == 2


@pytest.mark.parametrize(
    ("assignment", "fragment"),
    [
        ("stages.3.quantize.precision=int8", "is not an index"),
        ("stages.x.quantize.precision=int8", "is not an index"),
        ("teacher.path.x=1", "is not a mapping"),
        ("seed", "expected key.path=value"),
        ("=3", "the key path is empty"),
    ],
)
def test_bad_override_paths_are_recipe_errors(tmp_path, assignment, fragment):
    message = error_of(tmp_path, with_stage("- quantize: {}\n"), overrides=[assignment])

    assert fragment in message


def test_override_to_an_unknown_key_gets_a_hint(tmp_path):
    message = error_of(tmp_path, MINIMAL, overrides=["gates.max_sise=1"])

    assert "unknown key 'max_sise'" in message
    assert "did you mean 'max_size'" in message


def test_overridden_value_is_validated(tmp_path):
    message = error_of(tmp_path, with_stage("- prune: {}\n"), overrides=["stages.0.prune.sparsity=2"])

    assert "stages[0].prune.sparsity" in message


def test_apply_override_creates_missing_sections():
    data = {"version": 1}

    apply_override(data, "gates.min_accuracy=0.9")
    apply_override(data, "data.keys.x_train=images")

    assert data["gates"] == {"min_accuracy": 0.9}
    assert data["data"] == {"keys": {"x_train": "images"}}


def test_apply_override_sets_a_list_item():
    data = {"export": {"formats": ["tflite", "onnx"]}}

    apply_override(data, "export.formats.1=tflite")

    assert data["export"]["formats"] == ["tflite", "tflite"]


# ---------------------------------------------------------------------------------------------
# Name, resolved YAML, paths, lines


def test_name_defaults_to_the_file_stem(tmp_path):
    recipe = load(tmp_path, MINIMAL, name="digits-int8.yaml")

    assert recipe.name == "digits-int8"


def test_explicit_name_wins_over_the_file_stem(tmp_path):
    recipe = load(tmp_path, "name: mine\n" + MINIMAL, name="digits-int8.yaml")

    assert recipe.name == "mine"


def test_parse_recipe_without_a_file_uses_the_default_name():
    recipe = parse_recipe({"version": 1, "teacher": {"path": "m.keras"}})

    assert recipe.name == "run"
    assert recipe.source is None


def test_invalid_name_is_rejected(tmp_path):
    assert "name:" in error_of(tmp_path, "name: ../escape\n" + MINIMAL)


RICH = """\
version: 1
name: roundtrip
seed: 3
data:
  source: image_folder
  path: imgs
  image_size: [8, 8]
  labels: [a, b]
  scale: 0.5
teacher:
  build: {arch: mlp, width: 0.5}
  train: {epochs: 1}
stages:
  - distill: {temperature: 2}
  - prune
  - cluster:
  - quantize: {method: qat}
export:
  formats: [tflite]
gates:
  max_size: 64KiB
  max_accuracy_drop: 0.02
  max_latency_ms: 3
"""


@pytest.mark.parametrize("text", [MINIMAL, RICH, with_stage("- quantize: {precision: float16}\n")])
def test_resolved_yaml_round_trips(tmp_path, text):
    recipe = load(tmp_path, text)

    resolved = resolved_yaml(recipe)
    again = parse_recipe(yaml.safe_load(resolved))

    assert again.model_dump() == recipe.model_dump()
    assert [s.model_dump() for s in again.stages] == [s.model_dump() for s in recipe.stages]


def test_resolved_yaml_has_every_default_and_one_key_per_stage(tmp_path):
    data = yaml.safe_load(resolved_yaml(load(tmp_path, RICH)))

    assert [list(stage) for stage in data["stages"]] == [["distill"], ["prune"], ["cluster"], ["quantize"]]
    assert data["stages"][1]["prune"]["sparsity"] == 0.5
    assert data["stages"][3]["quantize"]["epochs"] == 2
    assert data["gates"]["max_size"] == 65536
    assert data["evaluate"]["runtimes"] == ["litert"]
    assert data["name"] == "roundtrip"
    assert data["data"]["calibration_samples"] == 256


def test_resolve_path_prefers_the_recipe_directory(tmp_path, monkeypatch):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    (recipes / "model.keras").write_text("beside")
    (work / "model.keras").write_text("cwd")
    recipe = load_recipe(write(recipes, MINIMAL))
    monkeypatch.chdir(work)

    resolved = recipe.resolve_path("model.keras")

    assert resolved == recipes.resolve() / "model.keras"
    assert resolved.read_text() == "beside"


def test_resolve_path_falls_back_to_the_working_directory(tmp_path, monkeypatch):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "models" / "model.keras").write_text("cwd")
    recipe = load_recipe(write(recipes, MINIMAL))
    monkeypatch.chdir(work)

    resolved = recipe.resolve_path("models/model.keras")

    assert resolved == Path.cwd() / "models" / "model.keras"
    assert resolved.read_text() == "cwd"


def test_resolve_path_keeps_absolute_paths(tmp_path):
    recipe = load(tmp_path, MINIMAL)
    absolute = tmp_path / "elsewhere" / "m.keras"

    assert recipe.resolve_path(str(absolute)) == absolute


def test_line_of_and_where_point_into_the_file(tmp_path):
    recipe = load(tmp_path, with_stage("- prune: {}\n- quantize: {}\n"))

    assert recipe.source == (tmp_path / "recipe.yaml").resolve()
    assert recipe.line_of("teacher", "path") == 3
    assert recipe.line_of("stages", 1) == 6
    assert recipe.where("stages", 1) == f"{recipe.source} line 6, stages[1]"


# ---------------------------------------------------------------------------------------------
# Sizes in gates.max_size


@pytest.mark.parametrize(
    ("value", "expected"),
    [("65536", 65536), ("64KB", 64_000), ("64KiB", 65_536), ("0.5MB", 500_000), ("1 MiB", 1_048_576)],
)
def test_max_size_accepts_size_strings(tmp_path, value, expected):
    recipe = load(tmp_path, MINIMAL + f"gates:\n  max_size: {value}\n")

    assert recipe.gates.max_size == expected
    assert isinstance(recipe.gates.max_size, int)


def test_max_size_with_a_bad_unit_is_an_error(tmp_path):
    message = error_of(tmp_path, MINIMAL + "gates:\n  max_size: 64KX\n")

    assert "line 5: gates.max_size" in message
    assert "64KX" in message


def test_gates_config_accepts_size_strings_in_code():
    assert GatesConfig(max_size="64KB").max_size == 64_000
    assert GatesConfig(max_size="64KB").model_dump()["max_size"] == 64_000


def test_infinite_max_size_is_a_recipe_error(tmp_path):
    message = error_of(tmp_path, MINIMAL + "gates:\n  max_size: .inf\n")

    assert "gates.max_size" in message
