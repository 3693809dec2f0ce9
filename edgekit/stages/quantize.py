"""Quantization: a precision plan for the exporters, after training with fake quantization (qat) or not (ptq).

Post-training quantization changes no weights: it records the plan on the artifact, whatever the
framework, and each format's exporter realizes it (the TFLite converter or AI Edge Quantizer for
.tflite, ONNX Runtime for .onnx). Quantization-aware training is implemented by each framework's backend.

Selective precision: `keep_float` (layer names or regexes) and `overrides` ({regex: int16x8 | float})
give some layers another precision than the plan's. The patterns are matched (`re.fullmatch`)
against the names of the model's layers that hold a weight matrix or kernel (`Backend.weight_layers`:
Keras layer names, torch module paths such as `features.3`), before anything trains
(`Backend.preflight`); a pattern that matches no layer is an error that lists the layers. The plan
carries the resolved layer names (`Plan.layers`).

Calibration: `calibration: minmax | percentile | entropy` says how the exporters choose activation
ranges from the calibration samples (`edgekit.precision.CALIBRATIONS`); `max_drop` also tries the
other two when the recipe's drops too much.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, field_validator, model_validator

from edgekit.artifact import Artifact
from edgekit.errors import InputError
from edgekit.precision import CALIBRATIONS, FLOAT_LAYER, LAYER_PRECISIONS, MINMAX, PLANS, Plan, plan_for
from edgekit.stages.base import ANY_FRAMEWORK, Method, StageConfig


_PT2E_GRU = ("LiteRT-Torch's PT2E quantizer annotates an nn.GRU only when it is called with an explicit "
             "hidden state and both of its outputs are used, and fails on this one ('list index out of range') "
             "while quantization-aware training prepares the model. Use quantize: {method: ptq, precision: int8} "
             "(the .tflite export decomposes the GRU first, formats/tflite/torch_recurrent.py) or precision: dynamic.")


def post_training(artifact: Artifact, config: "QuantizeConfig", context) -> Artifact:
    """Record the plan, its per-layer overrides resolved against the model's layers; the exporters
    quantize (with the calibration samples) when they write files. With `max_drop`, the run searches
    for a plan whose files meet it on the validation split (`RunContext.control_accuracy`)."""
    layers = {}
    if config.layer_patterns():
        try:
            layers = config.resolve_layers(context.backend.weight_layers(artifact.model))
        except ValueError as exc:
            raise InputError(f"{context.recipe.where('stages')}: quantize: {exc}") from None
    if not layers:
        planned = artifact.evolve("quantize", plan=config.plan())
    else:
        planned = artifact.evolve("quantize", plan=config.plan().with_layers(layers), details={"layers": layers})
    if config.max_drop is None:
        return planned
    return context.control_accuracy(planned, config.max_drop)


class QuantizeConfig(StageConfig):
    key: ClassVar[str] = "quantize"
    description: ClassVar[str] = "quantize weights (and activations) to the precision plan the exporters realize"
    order: ClassVar[int] = 90
    methods: ClassVar[dict[str, Method]] = {
        "quantize.ptq": Method({ANY_FRAMEWORK: "edgekit.stages.quantize:post_training"}, ("plan",),
                               {"method": "ptq"}),
        "quantize.qat": Method({"keras": "edgekit.backends.keras.qat:qat", "torch": "edgekit.backends.torch.qat:qat"},
                               ("plan", "qat"), {"method": "qat"}),
    }

    layer_refusals: ClassVar[dict] = {"quantize.qat": {"torch": {"gru": _PT2E_GRU}, "keras": {
        "attention": "TF-MOT's quantization-aware training has no scheme for MultiHeadAttention (nor "
                     "LayerNormalization). Use quantize: {method: ptq, precision: int8} (calibrated full "
                     "integer) or precision: dynamic instead.",
        "lstm": "TF-MOT's quantization-aware training cannot rebuild a model holding an LSTM ('Unable to clone "
                "model'). Use quantize: {method: ptq, precision: int8} or precision: dynamic (int8 LSTM "
                "weights) instead.",
        "gru": "TF-MOT's quantization-aware training cannot rebuild a model holding a GRU ('Unable to clone "
               "model'). Use quantize: {method: ptq, precision: int8} or precision: dynamic instead.",
    }}}
    compute_refusals: ClassVar[dict] = {"quantize.qat": {"keras": {
        "mixed": "TF-MOT's fake-quantization ops (FakeQuantWithMinMaxVars) take float32 tensors only, not the "
                 "bfloat16 or float16 that mixed precision computes in. Set compute.precision: float32 (or "
                 "--precision float32), or use quantize: {method: ptq, precision: int8}, which does not train.",
    }}}

    method: Literal["ptq", "qat"] = "ptq"
    precision: Literal[tuple(PLANS)] = "int8"  # type: ignore[valid-type]
    io: Optional[Literal["int8", "uint8", "float32"]] = None
    per_channel: bool = True
    epochs: Optional[Annotated[int, Field(gt=0)]] = None
    batch_size: Optional[Annotated[int, Field(gt=0)]] = None
    learning_rate: Optional[Annotated[float, Field(gt=0.0)]] = None
    max_drop: Optional[Annotated[float, Field(gt=0.0, lt=1.0)]] = None
    calibration: Literal[CALIBRATIONS] = MINMAX  # type: ignore[valid-type]
    keep_float: list[str] = Field(default_factory=list)
    overrides: dict[str, Literal[LAYER_PRECISIONS]] = Field(default_factory=dict)  # type: ignore[valid-type]

    @field_validator("keep_float", "overrides")
    @classmethod
    def _patterns_compile(cls, value):
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"'{pattern}' is not a regular expression ({exc}); a layer name with "
                                 "special characters needs them escaped, e.g. 'block\\.1'") from None
        return value

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
        if self.max_drop is not None and (self.method != "ptq" or not PLANS[self.precision].calibrated):
            raise ValueError("quantize.max_drop applies to method: ptq with precision: int8 or int16x8: it "
                             "searches calibrated post-training plans (equalization, int16x8 or float layers)")
        if self.calibration != MINMAX and (self.method != "ptq" or not PLANS[self.precision].calibrated):
            raise ValueError(f"quantize.calibration: {self.calibration} applies to method: ptq with precision: "
                             "int8 or int16x8 (calibrated activation ranges); "
                             + ("quantization-aware training learns its ranges" if self.method == "qat" else
                                f"precision: {self.precision} calibrates nothing") + "; remove it")
        if self.layer_patterns():
            key = "keep_float" if self.keep_float else "overrides"
            if self.method != "ptq":
                raise ValueError(f"quantize.{key} applies to method: ptq (post-training quantization); "
                                 "quantization-aware training quantizes every layer it trains")
            if not PLANS[self.precision].calibrated:
                raise ValueError(f"quantize.{key} applies to precision: int8 or int16x8 (calibrated activations); "
                                 f"precision: {self.precision} has no per-layer activation precision")
            redundant = [p for p, v in self.overrides.items() if v == self.precision]
            if redundant:
                raise ValueError(f"quantize.overrides: '{redundant[0]}: {self.precision}' is the plan's own "
                                 "precision; remove it, or use float")
        return self

    def layer_patterns(self) -> list[tuple[str, str]]:
        """(regex, precision) pairs: `keep_float` first (float wins), then `overrides` as written."""
        return [(p, FLOAT_LAYER) for p in self.keep_float] + list(self.overrides.items())

    def check_layers(self, names: list[str]) -> None:
        if self.layer_patterns():
            self.resolve_layers(names)

    def resolve_layers(self, names: list[str]) -> dict[str, str]:
        """{layer name: precision} of the layers named in `names` that a pattern matches in full (the
        first pattern that matches a layer decides). ValueError naming a pattern that matches none."""
        layers: dict[str, str] = {}
        for pattern, precision in self.layer_patterns():
            matched = [n for n in names if re.fullmatch(pattern, n)]
            if not matched:
                key = "keep_float" if pattern in self.keep_float else "overrides"
                shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
                raise ValueError(f"{key}: '{pattern}' matches no layer of the model (the whole name must match). "
                                 f"Its layers with weights are: {shown}")
            for name in matched:
                layers.setdefault(name, precision)
        return layers

    @property
    def label(self) -> str:
        """`quantize.ptq` or `quantize.qat`: the method matters for support."""
        return f"quantize.{self.method}"

    @property
    def refusal_key(self) -> str:
        """`quantize.ptq.int8.int8`: method, precision, then io (which realization a format uses)."""
        return f"{self.label}.{self.precision}.{self.io}"

    def plan(self) -> Plan:
        """The precision plan this stage asks the exporters to realize."""
        return plan_for(self.precision, self.io, self.per_channel, quantization_aware=self.method == "qat",
                        calibration=self.calibration)

    def summary(self) -> str:
        mixed = "".join(f", {p}: {', '.join(x for x, q in self.layer_patterns() if q == p)}"
                        for p in LAYER_PRECISIONS if any(q == p for _, q in self.layer_patterns()))
        control = f", max_drop {self.max_drop:g}" if self.max_drop is not None else ""
        ranges = f", {self.calibration} ranges" if self.calibration != MINMAX else ""
        return (f"{self.method} {self.precision} (io {self.io}, "
                f"{'per-channel' if self.per_channel else 'per-tensor'}{ranges}{mixed}{control})")
