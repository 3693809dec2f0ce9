"""The recipe (v1): pydantic models of the public contract in DESIGN.md.

Every model forbids unknown keys. `load_recipe` (edgekit.recipe.loading, re-exported here) reads
YAML safely, keeps the line of every key so that errors can point at it, applies `--set key.path=value`
overrides and turns pydantic's errors into one readable `RecipeError`:

    >>> recipe = load_recipe("recipes/quickstart.yaml", overrides=["gates.min_accuracy=0.9"])
    >>> recipe.stages[0].kind
    'quantize'

The stage sections (`stages:`) are the registered stage configurations of edgekit.stages; which
(framework, stage) pairs are implemented is derived from them in `edgekit.recipe.support`, checked by
`edgekit.validate` before anything is trained.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, PrivateAttr, create_model, field_validator, model_validator

from edgekit.compute import DEVICE_PATTERN, PRECISIONS
from edgekit.config import Arch, CodeReference, Fraction, Framework, Size, Strict
from edgekit.formats import registry as format_registry
from edgekit.recipe.search import SearchConfig, check_search
from edgekit.stages import registry
from edgekit.stages.base import StageConfig
from edgekit.stages.quantize import QuantizeConfig
from edgekit.zoo import BASES, Head

FormatName = Literal[tuple(format_registry.FORMATS)]  # export.formats values, from the format registry
RuntimeName = Literal[format_registry.runtime_names()]  # evaluate.runtimes values


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


class HeadConfig(Strict):
    """The head of a base arch (edgekit.zoo.BASES): global average pool, `dense` ReLU layers, dropout,
    then the output layer."""

    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.2
    dense: list[Annotated[int, Field(gt=0)]] = Field(default_factory=list)

    def spec(self) -> Head:
        return Head(dropout=self.dropout, dense=tuple(self.dense))


class BuildConfig(Strict):
    arch: Arch
    width: Annotated[float, Field(gt=0.0, le=8.0)] = 1.0
    weights: Optional[str] = None  # base archs: a local file of pretrained base weights (never downloaded)
    freeze: Literal["base", "none"] = "none"  # base: train the head with the pretrained base frozen
    head: Optional[HeadConfig] = None

    @model_validator(mode="after")
    def _transfer_options(self) -> "BuildConfig":
        base = BASES.get(self.arch)
        given = [key for key in ("weights", "head") if getattr(self, key)] + (["freeze"] if self.freeze != "none" else [])
        if base is None and given:
            raise ValueError(f"teacher.build.{given[0]} applies to the archs with a pretrained base "
                             f"({', '.join(BASES)}), not to {self.arch}")
        if base is not None and not base.scalable and self.width != 1.0:
            raise ValueError(f"{self.arch} has one width: remove teacher.build.width (or set it to 1.0); "
                             f"mobilenet_v2 takes a width (alpha)")
        if self.freeze == "base" and not self.weights:
            raise ValueError("teacher.build.freeze: base keeps pretrained weights fixed, so it needs "
                             "teacher.build.weights: <file of the base's weights>; or set freeze: none")
        return self


class TeacherFineTune(Strict):
    """After the head trained on a frozen base: train the whole model (BatchNorm stays frozen) at a low rate."""

    epochs: Annotated[int, Field(gt=0)] = 5
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-5


class TrainConfig(Strict):
    epochs: Annotated[int, Field(gt=0)] = 10
    batch_size: Annotated[int, Field(gt=0)] = 32
    learning_rate: Annotated[float, Field(gt=0.0)] = 1e-3
    fine_tune: Optional[TeacherFineTune] = None


class TeacherConfig(Strict):
    path: Optional[str] = None
    framework: Optional[Framework] = None
    factory: Optional[str] = None
    trust_code: bool = False  # Keras: allow Lambda layers and custom_objects (Python code runs on load)
    custom_objects: Optional[CodeReference] = None  # Keras: the module defining the model's custom layers
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
        if self.train and self.train.fine_tune and (self.build is None or self.build.freeze != "base"):
            raise ValueError("teacher.train.fine_tune follows head training on a frozen base: it needs "
                             "teacher.build.freeze: base (with teacher.build.weights); or remove fine_tune")
        if self.custom_objects and not self.path:
            raise ValueError("teacher.custom_objects applies to a teacher loaded from teacher.path (a built zoo "
                             "teacher has no custom layers)")
        return self


STAGE_CONFIGS: dict[str, type[StageConfig]] = registry.STAGE_CONFIGS


def _one_of(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


class _StageEntry(Strict):
    """One entry of `stages:`, a mapping with exactly one key: the stage's kind. Its fields (one
    optional configuration per registered stage) are added by `Stage` below."""

    @model_validator(mode="before")
    @classmethod
    def _empty_body_means_defaults(cls, value: Any) -> Any:
        if isinstance(value, str) and value in STAGE_CONFIGS:
            return {value: {}}
        if isinstance(value, dict):
            return {k: ({} if v is None and k in STAGE_CONFIGS else v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "_StageEntry":
        given = [name for name in STAGE_CONFIGS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"each stage is a mapping with exactly one key ({_one_of(list(STAGE_CONFIGS))}), "
                f"got {given or 'none'}"
            )
        return self

    @property
    def kind(self) -> str:
        return next(name for name in STAGE_CONFIGS if getattr(self, name) is not None)

    @property
    def config(self) -> StageConfig:
        return getattr(self, self.kind)

    @property
    def label(self) -> str:
        """`quantize.ptq` for quantization (the method matters for support), else the kind."""
        return self.config.label

    def model_dump(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return {self.kind: self.config.model_dump(**kwargs)}


Stage = create_model(
    "Stage", __base__=_StageEntry, __module__=__name__,
    **{key: (Optional[cls], None) for key, cls in STAGE_CONFIGS.items()},
)
Stage.__doc__ = "One entry of `stages:`, a mapping with exactly one key: the stage's kind (see edgekit.stages)."


class ExportConfig(Strict):
    formats: list[FormatName] = Field(default_factory=lambda: format_registry.default_formats(), min_length=1)
    sparse: bool = False
    bundle: bool = True
    channels_last: Optional[bool] = None  # None: the framework's own layout; true: NHWC .tflite (torch)
    c_array: bool = False  # model_data.h/.cc: model.tflite as a C array with its TFLite Micro arena

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


class EvaluateConfig(Strict):
    runtimes: Optional[list[RuntimeName]] = None
    latency: LatencyConfig = LatencyConfig()


class GatesConfig(Strict):
    max_size: Optional[Size] = None
    max_accuracy_drop: Optional[Annotated[float, Field(ge=0.0)]] = None
    min_accuracy: Optional[Fraction] = None
    max_latency_ms: Optional[Annotated[float, Field(gt=0.0)]] = None
    min_compression: Optional[Annotated[float, Field(gt=0.0)]] = None
    max_arena: Optional[Size] = None  # TFLite Micro's tensor arena, measured on the tflm runtime
    max_flash: Optional[Size] = None  # the .tflite flashed with TFLite Micro


class ComputeConfig(Strict):
    """Where every training step of the run trains (teacher, distill, prune, cluster, QAT);
    exporting and measuring always use the float32 model on the CPU runtimes."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal[PRECISIONS] = "float32"  # mixed: 16-bit compute, float32 weights
    workers: Annotated[int, Field(ge=1, le=64)] = 1  # training processes `edgekit compress` starts here

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.match(DEVICE_PATTERN, value.strip()):
            raise ValueError(f"'{value}' is not a device: use auto (a GPU when the framework sees one), cpu, "
                             "cuda or cuda:N (the N-th GPU)")
        return value.strip()


class Recipe(Strict):
    version: Literal[1] = 1
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)] = "run"
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 0
    task: Literal["classification", "regression"] = "classification"
    output: Optional[str] = None
    data: DataConfig = DataConfig()
    teacher: TeacherConfig
    stages: list[Stage] = Field(default_factory=list)
    export: ExportConfig = ExportConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    gates: GatesConfig = GatesConfig()
    compute: ComputeConfig = ComputeConfig()
    search: Optional[SearchConfig] = None  # edgekit search; compress ignores it

    _source: Optional[Path] = PrivateAttr(default=None)
    _lines: dict = PrivateAttr(default_factory=dict)
    _data: dict = PrivateAttr(default_factory=dict)  # the mapping as read, after --set: trials change it

    @model_validator(mode="after")
    def _cross_checks(self) -> "Recipe":
        formats = [format_registry.get_format(f) for f in self.export.formats]
        exported = {runtime for fmt in formats for runtime in fmt.runtimes}
        if self.evaluate.runtimes is None:
            self.evaluate.runtimes = [fmt.default_runtime for fmt in formats]
        missing = [r for r in self.evaluate.runtimes if r not in exported]
        if missing:
            raise ValueError(
                f"evaluate.runtimes lists {missing} but export.formats {self.export.formats} makes no file for it "
                f"({format_registry.runtimes_description()})"
            )
        if self.gates.max_latency_ms is not None and "litert" not in self.evaluate.runtimes:
            raise ValueError("gates.max_latency_ms is the p50 on LiteRT: it needs tflite in export.formats")
        if self.export.c_array and not any("tflm" in fmt.runtimes for fmt in formats):
            raise ValueError("export.c_array writes the .tflite that TFLite Micro runs as C source: it needs "
                             "tflite in export.formats")
        for gate in ("max_arena", "max_flash"):
            if getattr(self.gates, gate) is not None and "tflm" not in self.evaluate.runtimes:
                raise ValueError(f"gates.{gate} is measured on TFLite Micro: add tflm to evaluate.runtimes "
                                 "(for example [litert, tflm]), with tflite in export.formats")
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
        if self.search is not None:
            check_search(self.search, self.export.formats, self.evaluate.runtimes, self.task,
                         self.data.validation_split, lambda fmt: format_registry.get_format(fmt).runtimes)
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

    def named_files(self) -> list[tuple[tuple, str]]:
        """Every file the recipe names, as (key path, value as written): the teacher, the data, a
        labels file and what each stage reads (e.g. `stages[1].distill.student.path`)."""
        named = [(("teacher", "path"), self.teacher.path), (("data", "path"), self.data.path)]
        if self.teacher.build is not None:
            named.append((("teacher", "build", "weights"), self.teacher.build.weights))
        if isinstance(self.data.labels, str):
            named.append((("data", "labels"), self.data.labels))
        for i, stage in enumerate(self.stages):
            named.extend((("stages", i, stage.kind, *key), value) for key, value in stage.config.files())
        return [(key, value) for key, value in named if value]

    def loaded_models(self) -> list[tuple[tuple, Any]]:
        """(key path, section) of every model loaded from a file: the teacher and each distill
        student with a `path`. Each section has `path`, `trust_code` and `custom_objects`."""
        models: list[tuple[tuple, Any]] = [(("teacher",), self.teacher)] if self.teacher.path else []
        for i, stage in enumerate(self.stages):
            student = getattr(stage.config, "student", None)
            if student is not None and getattr(student, "path", None):
                models.append((("stages", i, stage.kind, "student"), student))
        return models

    def resolve_path(self, value: str) -> Path:
        """A path from the recipe: next to the recipe file if it exists there, else from the working directory."""
        candidate = Path(value).expanduser()
        if candidate.is_absolute() or self._source is None:
            return candidate
        beside = self._source.parent / candidate
        return beside if beside.exists() else Path.cwd() / candidate


def _dotted(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_for(loc: tuple, lines: dict[tuple, int]) -> Optional[int]:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None

