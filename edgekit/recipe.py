"""The recipe (v1): pydantic models of the public contract in DESIGN.md.

Every model forbids unknown keys. `load_recipe` reads YAML with `yaml.safe_load` semantics, keeps
the line of every key so that errors can point at it, applies `--set key.path=value` overrides and
turns pydantic's errors into one readable `RecipeError`:

    >>> recipe = load_recipe("recipes/quickstart.yaml", overrides=["gates.min_accuracy=0.9"])
    >>> recipe.stages[0].kind
    'quantize'

Which (framework, stage) pairs are implemented is data in `edgekit.support`, checked by
`edgekit.validate` before anything is trained.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import RecipeError
from .sizes import parse_size

ARCHS = ("cnn_small", "cnn_tiny", "mlp", "ds_cnn", "resnet8", "mobilenet_v1")
Arch = Literal["cnn_small", "cnn_tiny", "mlp", "ds_cnn", "resnet8", "mobilenet_v1"]
Framework = Literal["keras", "torch"]
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(int)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class DataKeys(Strict):
    x_train: str = "x_train"
    y_train: str = "y_train"
    x_test: str = "x_test"
    y_test: str = "y_test"


class DataConfig(Strict):
    source: Literal["digits", "npz", "image_folder", "keras"] = "digits"
    path: Optional[str] = None
    name: Optional[Literal["mnist", "fashion_mnist", "cifar10"]] = None
    image_size: Optional[tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]] = None
    keys: DataKeys = DataKeys()
    layout: Literal["nhwc", "nchw"] = "nhwc"
    scale: float = 1.0
    offset: float = 0.0
    validation_split: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    calibration_samples: Annotated[int, Field(gt=0)] = 256
    test_samples: Optional[Annotated[int, Field(gt=0)]] = None
    labels: Optional[Union[list[str], str]] = None

    @model_validator(mode="after")
    def _source_needs(self) -> "DataConfig":
        if self.source in ("npz", "image_folder") and not self.path:
            raise ValueError(f"data.source '{self.source}' needs data.path")
        if self.source == "image_folder" and self.image_size is None:
            raise ValueError("data.source 'image_folder' needs data.image_size: [height, width]")
        if self.source == "keras" and self.name is None:
            raise ValueError("data.source 'keras' needs data.name: mnist | fashion_mnist | cifar10")
        if self.source != "keras" and self.name is not None:
            raise ValueError("data.name applies only to data.source 'keras'")
        if self.source != "image_folder" and self.image_size is not None:
            raise ValueError("data.image_size applies only to data.source 'image_folder'")
        return self


class BuildConfig(Strict):
    arch: Arch
    width: Annotated[float, Field(gt=0.0, le=8.0)] = 1.0


class TrainConfig(Strict):
    epochs: Annotated[int, Field(gt=0)] = 10
    batch_size: Annotated[int, Field(gt=0)] = 32
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3


class TeacherConfig(Strict):
    path: Optional[str] = None
    framework: Optional[Framework] = None
    factory: Optional[str] = None
    trust_code: bool = False  # Keras: allow Lambda layers (Python code inside the model file)
    build: Optional[BuildConfig] = None
    train: Optional[TrainConfig] = None

    @model_validator(mode="after")
    def _load_or_build(self) -> "TeacherConfig":
        if self.path and self.build:
            raise ValueError("give either teacher.path (load a model) or teacher.build (train one), not both")
        if not self.path and not self.build:
            raise ValueError("teacher needs teacher.path (a model file) or teacher.build: {arch: cnn_small}")
        if self.train and not self.build:
            raise ValueError("teacher.train applies to a teacher built from teacher.build")
        return self


class StudentConfig(Strict):
    """The distillation student: a zoo architecture with a width multiplier, or a Keras model file."""

    arch: Optional[Arch] = None
    width: Annotated[float, Field(gt=0.0, le=8.0)] = 1.0
    path: Optional[str] = None

    @model_validator(mode="after")
    def _arch_or_path(self) -> "StudentConfig":
        if (self.arch is None) == (self.path is None):
            raise ValueError("distill.student needs either arch (with width) or path, e.g. {arch: cnn_small, width: 0.25}")
        return self


class FineTune(Strict):
    """Training settings shared by the stages that train (defaults depend on the stage)."""

    epochs: Annotated[int, Field(gt=0)] = 3
    batch_size: Optional[Annotated[int, Field(gt=0)]] = None
    learning_rate: Optional[Annotated[float, Field(gt=0.0)]] = None

    DEFAULT_LEARNING_RATE: ClassVar[float] = 1e-3

    @model_validator(mode="after")
    def _defaults(self) -> "FineTune":
        if self.batch_size is None:
            self.batch_size = 32
        if self.learning_rate is None:
            self.learning_rate = self.DEFAULT_LEARNING_RATE
        return self


class DistillConfig(FineTune):
    student: StudentConfig = Field(default_factory=lambda: StudentConfig(arch="cnn_small", width=0.25))
    temperature: Annotated[float, Field(gt=0.0)] = 4.0
    alpha: Fraction = 0.9
    epochs: Annotated[int, Field(gt=0)] = 10


class PruneConfig(FineTune):
    sparsity: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    structure: Literal["unstructured", "2:4", "channels"] = "unstructured"
    schedule: Literal["polynomial", "constant"] = "polynomial"
    initial_sparsity: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0

    @model_validator(mode="after")
    def _structure_options(self) -> "PruneConfig":
        if self.structure == "2:4" and abs(self.sparsity - 0.5) > 1e-9:
            raise ValueError("structure '2:4' keeps 2 of every 4 weights, so its sparsity is 0.5; remove sparsity")
        if self.structure != "unstructured" and (self.schedule != "polynomial" or self.initial_sparsity):
            raise ValueError(f"schedule and initial_sparsity apply to structure: unstructured, not '{self.structure}'")
        if self.initial_sparsity and self.schedule != "polynomial":
            raise ValueError("initial_sparsity applies to schedule: polynomial")
        if self.initial_sparsity >= self.sparsity:
            raise ValueError(f"initial_sparsity ({self.initial_sparsity}) must be below sparsity ({self.sparsity})")
        return self


class ClusterConfig(FineTune):
    clusters: Annotated[int, Field(ge=2, le=256)] = 16
    epochs: Annotated[int, Field(gt=0)] = 1

    DEFAULT_LEARNING_RATE: ClassVar[float] = 1e-4


class QuantizeConfig(Strict):
    method: Literal["ptq", "qat"] = "ptq"
    precision: Literal["int8", "dynamic", "float16"] = "int8"
    io: Optional[Literal["int8", "uint8", "float32"]] = None
    per_channel: bool = True
    epochs: Optional[Annotated[int, Field(gt=0)]] = None
    batch_size: Optional[Annotated[int, Field(gt=0)]] = None
    learning_rate: Optional[Annotated[float, Field(gt=0.0)]] = None

    @model_validator(mode="after")
    def _combinations(self) -> "QuantizeConfig":
        if self.io is None:
            self.io = "int8" if self.precision == "int8" else "float32"
        if self.precision != "int8" and self.io != "float32":
            raise ValueError(
                f"io: {self.io} needs precision: int8 (full integer); precision: {self.precision} keeps "
                "float inputs and outputs, so use io: float32"
            )
        training = {k for k in ("epochs", "batch_size", "learning_rate") if getattr(self, k) is not None}
        if self.method == "ptq" and training:
            raise ValueError(f"quantize.{sorted(training)[0]} applies only to method: qat "
                             "(post-training quantization does not train)")
        if self.method == "qat":
            if self.precision != "int8":
                raise ValueError("method: qat produces a full-integer model; use precision: int8")
            if not self.per_channel:
                raise ValueError("method: qat uses TF-MOT's per-channel 8-bit scheme; remove per_channel: false")
            self.epochs = self.epochs or 2
            self.batch_size = self.batch_size or 32
            self.learning_rate = self.learning_rate or 1e-3
        return self


STAGE_CONFIGS: dict[str, type[Strict]] = {
    "distill": DistillConfig,
    "prune": PruneConfig,
    "cluster": ClusterConfig,
    "quantize": QuantizeConfig,
}


class Stage(Strict):
    """One entry of `stages:`, a mapping with exactly one key: the stage's kind."""

    distill: Optional[DistillConfig] = None
    prune: Optional[PruneConfig] = None
    cluster: Optional[ClusterConfig] = None
    quantize: Optional[QuantizeConfig] = None

    @model_validator(mode="before")
    @classmethod
    def _empty_body_means_defaults(cls, value: Any) -> Any:
        if isinstance(value, str) and value in STAGE_CONFIGS:
            return {value: {}}
        if isinstance(value, dict):
            return {k: ({} if v is None and k in STAGE_CONFIGS else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "Stage":
        given = [name for name in STAGE_CONFIGS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "each stage is a mapping with exactly one key (distill, prune, cluster or quantize), "
                f"got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(name for name in STAGE_CONFIGS if getattr(self, name) is not None)

    @property
    def config(self) -> Strict:
        return getattr(self, self.kind)

    @property
    def label(self) -> str:
        """`quantize.ptq` for quantization (the method matters for support), else the kind."""
        if self.kind == "quantize":
            return f"quantize.{self.quantize.method}"
        return self.kind

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {self.kind: self.config.model_dump(**kwargs)}


class ExportConfig(Strict):
    formats: list[Literal["tflite", "onnx"]] = Field(default_factory=lambda: ["tflite", "onnx"], min_length=1)
    sparse: bool = False
    bundle: bool = True
    channels_last: Optional[bool] = None  # None: the framework's own layout; true: NHWC .tflite (torch)

    @field_validator("formats")
    @classmethod
    def _unique(cls, formats: list[str]) -> list[str]:
        if len(set(formats)) != len(formats):
            raise ValueError(f"export.formats lists a format twice: {formats}")
        return formats


class LatencyConfig(Strict):
    warmup: Annotated[int, Field(ge=0)] = 10
    runs: Annotated[int, Field(gt=0)] = 100
    threads: Annotated[int, Field(gt=0)] = 1
    batch: Annotated[int, Field(gt=0)] = 1


RUNTIME_OF_FORMAT = {"tflite": "litert", "onnx": "onnxruntime"}


class EvaluateConfig(Strict):
    runtimes: Optional[list[Literal["litert", "onnxruntime"]]] = None
    latency: LatencyConfig = LatencyConfig()


class GatesConfig(Strict):
    max_size: Optional[Size] = None
    max_accuracy_drop: Optional[Annotated[float, Field(ge=0.0)]] = None
    min_accuracy: Optional[Fraction] = None
    max_latency_ms: Optional[Annotated[float, Field(gt=0.0)]] = None
    min_compression: Optional[Annotated[float, Field(gt=0.0)]] = None


class Recipe(Strict):
    version: Literal[1] = 1
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)] = "run"
    seed: int = 0
    task: Literal["classification", "regression"] = "classification"
    output: Optional[str] = None
    data: DataConfig = DataConfig()
    teacher: TeacherConfig
    stages: list[Stage] = Field(default_factory=list)
    export: ExportConfig = ExportConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gates: GatesConfig = GatesConfig()

    _source: Optional[Path] = PrivateAttr(default=None)
    _lines: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Recipe":
        exported = {RUNTIME_OF_FORMAT[f] for f in self.export.formats}
        if self.evaluate.runtimes is None:
            self.evaluate.runtimes = [RUNTIME_OF_FORMAT[f] for f in self.export.formats]
        missing = [r for r in self.evaluate.runtimes if r not in exported]
        if missing:
            raise ValueError(
                f"evaluate.runtimes lists {missing} but export.formats {self.export.formats} makes no file for it "
                "(litert runs .tflite, onnxruntime runs .onnx)"
            )
        if self.gates.max_latency_ms is not None and "litert" not in self.evaluate.runtimes:
            raise ValueError("gates.max_latency_ms is the p50 on LiteRT: it needs tflite in export.formats")
        if self.gates.min_compression is not None and "tflite" not in self.export.formats:
            raise ValueError("gates.min_compression compares .tflite sizes: it needs tflite in export.formats")
        if self.task == "regression" and self.gates.min_accuracy is not None:
            raise ValueError(
                "gates.min_accuracy applies to classification; for regression use gates.max_accuracy_drop "
                "(the largest allowed increase of the mean absolute error)"
            )
        quantizers = [s for s in self.stages if s.kind == "quantize"]
        if len(quantizers) > 1:
            raise ValueError("stages: more than one quantize stage; keep one")
        if quantizers and self.stages[-1].kind != "quantize":
            raise ValueError("stages: quantize must be the last stage (later stages would train a quantized model)")
        return self

    @property
    def quantize(self) -> Optional[QuantizeConfig]:
        return next((s.quantize for s in self.stages if s.kind == "quantize"), None)

    @property
    def source(self) -> Optional[Path]:
        """The recipe file this was read from (None for recipes built in code)."""
        return self._source

    def line_of(self, *key_path: Any) -> Optional[int]:
        """Line of a key in the recipe file, e.g. `line_of("stages", 0)`, for error messages."""
        return _line_for(tuple(key_path), self._lines)

    def where(self, *key_path: Any) -> str:
        """`recipe.yaml line 12, stages[0]`: how error messages point at a key."""
        line = self.line_of(*key_path)
        file = str(self._source) if self._source else "recipe"
        return f"{file}{f' line {line}' if line else ''}, {_dotted(tuple(key_path))}"

    def resolve_path(self, value: str) -> Path:
        """A path from the recipe: next to the recipe file if it exists there, else from the working directory."""
        candidate = Path(value).expanduser()
        if candidate.is_absolute() or self._source is None:
            return candidate
        beside = self._source.parent / candidate
        return beside if beside.exists() else Path.cwd() / candidate


# ---------------------------------------------------------------------------------------------
# Loading: YAML with line numbers, overrides, readable errors.


class _LineLoader(yaml.SafeLoader):
    """A safe loader that also records the line of every mapping key and sequence item."""


def _index_lines(node: yaml.Node, path: tuple = (), index: Optional[dict] = None) -> dict[tuple, int]:
    index = {} if index is None else index
    index.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            index[path + (key,)] = key_node.start_mark.line + 1
            _index_lines(value_node, path + (key,), index)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index[path + (i,)] = item.start_mark.line + 1
            _index_lines(item, path + (i,), index)
    return index


def _parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[tuple, int]]:
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise RecipeError(
            f"{source}: invalid YAML at {where}: {exc.problem}. Check the indentation and the ':' after each key."
        ) from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: invalid YAML: {exc}") from None
    if data is None:
        raise RecipeError(f"{source}: the recipe is empty. Start from `edgekit init` or recipes/quickstart.yaml.")
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping of keys (version, data, teacher, ...), not a {type(data).__name__}.")
    return data, _index_lines(node) if node is not None else {}


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _model_at(loc: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model class found by walking `loc` from Recipe, for "did you mean" hints."""
    model: Any = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _unwrap(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) in (Union, list, Annotated) or str(get_origin(annotation)) == "typing.Union":
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if args else annotation
        if get_origin(annotation) is None:
            break
    return annotation


def _line_for(loc: tuple, lines: dict[tuple, int]) -> Optional[int]:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _describe_error(err: dict, lines: dict[tuple, int]) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    line = _line_for(loc, lines)
    at = f"line {line}: " if line else ""
    if err["type"] == "extra_forbidden":
        key, parent = loc[-1], loc[:-1]
        model = _model_at(parent)
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f" — did you mean '{close[0]}'?" if close else (f" (known keys: {', '.join(known)})" if known else "")
        where = f" in {_dotted(parent)}" if parent else ""
        return f"{at}unknown key '{key}'{where}{hint}"
    message = err["msg"].removeprefix("Value error, ")
    if not loc:  # a cross-field check: point at the first key path its message names
        named = re.match(r"^([a-z_]+(?:\.[a-z_]+)*)", message)
        line = lines.get(tuple(named.group(1).split("."))) if named else None
        return f"{f'line {line}: ' if line else ''}{message}"
    if err["type"] != "value_error" and not isinstance(err.get("input"), (dict, list)) and "input" in err:
        message = f"{message}, got {err['input']!r}"
    return f"{at}{_dotted(loc)}: {message}"


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `--set key.path=value` to the raw recipe mapping; the value is parsed as YAML.

    >>> d = {"stages": [{"quantize": {"precision": "int8"}}]}
    >>> apply_override(d, "stages.0.quantize.precision=dynamic"); d["stages"][0]["quantize"]["precision"]
    'dynamic'
    """
    if "=" not in assignment:
        raise RecipeError(f"--set {assignment!r}: expected key.path=value, e.g. --set gates.min_accuracy=0.9")
    path, raw = assignment.split("=", 1)
    parts = [p for p in path.strip().split(".") if p]
    if not parts:
        raise RecipeError(f"--set {assignment!r}: the key path is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise RecipeError(f"--set {path}: '{part}' is not an index of that list (it has {len(node)} items)")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise RecipeError(f"--set {path}: '{'.'.join(parts[:i])}' is not a mapping")
        if node.get(part) is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise RecipeError(f"--set {path}: '{last}' is not an index of that list")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise RecipeError(f"--set {path}: the parent of '{last}' is not a mapping")


def parse_recipe(data: dict[str, Any], source: str = "<recipe>", lines: Optional[dict] = None) -> Recipe:
    """Validate a raw mapping into a Recipe, raising one RecipeError that lists every problem."""
    data = dict(data)
    if "version" not in data:
        raise RecipeError(f"{source}: missing 'version: 1' at the top of the recipe (the recipe format version).")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(e, lines or {}) for e in exc.errors()]
        listing = "\n".join(f"  - {p}" for p in problems)
        raise RecipeError(f"{source}: the recipe has {len(problems)} problem(s):\n{listing}") from None


def load_recipe(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Recipe:
    """Read, override and validate a recipe file. The run name defaults to the file's stem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file. `edgekit init` writes a starter recipe.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc}).") from None
    data, lines = _parse_yaml(text, str(path))
    for assignment in overrides:
        apply_override(data, assignment)
    data.setdefault("name", re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "run")
    recipe = parse_recipe(data, str(path), lines)
    recipe._source = path.resolve()
    recipe._lines = lines
    return recipe


def resolved_yaml(recipe: Recipe) -> str:
    """The recipe with every default filled in, as written to `recipe.resolved.yaml`."""
    data = recipe.model_dump(mode="json")
    data["stages"] = [stage.model_dump(mode="json") for stage in recipe.stages]
    return yaml.safe_dump(data, sort_keys=False)
