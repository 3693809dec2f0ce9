"""What a shipped file format is: its name, suffix, the runtimes that run its files, and the modules
that write, export, read and inspect it, per framework.

Everything here is plain data: implementation modules are named as "module" or "module:function"
strings and imported only when used (`load`), so importing the registry stays cheap.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from edgekit.errors import StageError
from edgekit.precision import MINMAX


def load(target: str) -> Callable[..., Any]:
    """The object named by "package.module:attribute", importing the module on first use."""
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Refusal:
    """A recipe choice a writer cannot produce, declared beside the writer as data.

    `key` names the choice ("export.sparse", "export.channels_last.false", "qat.io.float32",
    "quantize.precision.int16x8", "quantize.calibration.entropy"; see `edgekit.formats.registry.choices`),
    `setting` is how the user wrote it ("io: float32") and `reason` says why and what to do instead."""

    key: str
    setting: str
    reason: str


def choices(plan=None, options: Any = None) -> list[str]:
    """The refusable recipe choices made by `plan` and `options`, as `Refusal.key`s.

    `options` is anything with `sparse` and `channels_last` attributes (the recipe's `export:`
    section) or None; `channels_last` None means "not given", which nothing refuses. A plan makes
    `quantize.precision.<name>`, `quantize.calibration.<rule>` when it clips (not minmax) and, when
    quantization-aware, `qat.io.<io>`."""
    made = []
    if options is not None and getattr(options, "sparse", False):
        made.append("export.sparse")
    if options is not None and getattr(options, "channels_last", None) is False:
        made.append("export.channels_last.false")
    if plan is not None:
        made.append(f"quantize.precision.{plan.precision}")
        if plan.calibrated and plan.calibration != MINMAX and not plan.quantization_aware:
            made.append(f"quantize.calibration.{plan.calibration}")
        if plan.quantization_aware:
            made.append(f"qat.io.{plan.io}")
    return made


#: Keras writers give channels-last files whatever the format: NCHW cannot be asked of them.
KERAS_CHANNELS_LAST = Refusal("export.channels_last.false", "export.channels_last: false",
                              "Keras models are channels-last (NHWC); export.channels_last: false "
                              "(NCHW) is not possible. Remove the key")


@dataclass(frozen=True)
class Writer:
    """How one framework's models become files of one format.

    `function` ("module:function") is called as `write(artifact, path, calibration, sparse=False,
    channels_last=False) -> Path`; `layout` is the layout of the file's image input, and
    `channels_last_layout` the one with `export.channels_last: true` (None: the same)."""

    function: str
    layout: str = "nhwc"
    channels_last_layout: Optional[str] = None
    refusals: tuple[Refusal, ...] = ()

    def input_layout(self, channels_last: bool) -> str:
        return self.channels_last_layout if channels_last and self.channels_last_layout else self.layout

    def load(self) -> Callable[..., Any]:
        return load(self.function)

    def refused(self, plan=None, options: Any = None) -> list[Refusal]:
        """The refusals of this writer that `plan` and `options` run into, in the order of `choices`."""
        declared = {refusal.key: refusal for refusal in self.refusals}
        return [declared[key] for key in choices(plan, options) if key in declared]


@dataclass(frozen=True)
class ExportOptions:
    """What the exporters take from the recipe besides the artifact: channels-last float calibration
    samples, `export.sparse`, `export.channels_last` and the thread count files are checked with."""

    calibration: Any = None
    sparse: bool = False
    channels_last: bool = False
    threads: int = 1


@dataclass(frozen=True)
class Format:
    """A shipped file format. `runtimes` lists the runtimes (names in `edgekit.runtimes`) that can
    run its files, the default first; evaluation measures a file on every one the recipe names.

    `writers`: framework -> Writer. `exporter` ("module:function"): the format's export flow, called
    as `export(artifact, path, options, written, facts) -> list of warnings` (`written` is this format's
    own memory across the calls of one run; `facts` a dict the exporter fills with what the report
    should say about the file, e.g. the .onnx int8 `quantization_choice`). `reader`: module with
    `model_files`, `param_count`, `weight_layers` and `is_sparse_encoded` of a file. `inspector` ("module:function"): the
    format-specific part of `edgekit inspect`; `gpu_check` ("module:function", or "" when the format
    has none): the GPU delegate verdict. `diagnose` ("module:function"): the per-layer quantization
    error of a plan, with the field's own tool, called as `diagnose(float_path, plan, samples) ->
    (tool, {layer: figures})` (`edgekit analyze`). `float_io`: the files keep float32 inputs and
    outputs whatever the precision plan. `by_default`: exported when a recipe names no export.formats
    (an opt-in format, such as .pte, says False). `not_for`: framework -> why its models cannot become this
    format at all (a framework with no writer and no reason here gets a generic message)."""

    name: str  # as written in export.formats
    suffix: str  # ".tflite"
    runtimes: tuple[str, ...]
    description: str = ""
    writers: Mapping[str, Writer] = field(default_factory=dict, hash=False)
    exporter: str = ""
    reader: str = ""
    inspector: str = ""
    gpu_check: str = ""
    diagnose: str = ""
    float_io: bool = False
    by_default: bool = True
    not_for: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def default_runtime(self) -> str:
        return self.runtimes[0]

    def refusal_of(self, framework: str) -> str | None:
        """Why `framework`'s models cannot be written in this format, or None when they can."""
        if framework in self.writers:
            return None
        return self.not_for.get(framework) or f"{framework} models cannot be exported to {self.name}"

    def writer(self, framework: str) -> Writer:
        """The writer of `framework`'s models; StageError when this format has none."""
        if framework not in self.writers:
            raise StageError("export", self.refusal_of(framework))
        return self.writers[framework]

    def check_plan(self, framework: str, plan) -> None:
        """StageError at export time for a plan the framework's writer refuses (recipe validation
        refuses it earlier, with the same reason)."""
        for refusal in self.writer(framework).refused(plan):
            raise StageError("export", f"{refusal.setting} for a {framework} {self.suffix}: {refusal.reason}")

    def io_of(self, plan) -> str:
        """Type of the inputs and outputs of a file written with `plan` (None: float)."""
        return "float32" if plan is None or self.float_io else plan.io

    def export(self, artifact, path, options: ExportOptions, written: dict,
               facts: dict | None = None) -> list[str]:
        return load(self.exporter)(artifact, path, options, written, {} if facts is None else facts)
