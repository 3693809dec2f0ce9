"""Quantization: a precision plan for the exporters, after training with fake quantization (qat) or not (ptq).

Post-training quantization changes no weights: it records the plan on the artifact, whatever the
framework, and each format's exporter realizes it (the TFLite converter for .tflite, ONNX Runtime
for .onnx). Quantization-aware training is implemented by each framework's backend.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from edgekit.artifact import Artifact
from edgekit.precision import PLANS, Plan, plan_for
from edgekit.stages.base import ANY_FRAMEWORK, Method, StageConfig


_PT2E_GRU = ("LiteRT-Torch's PT2E quantizer annotates an nn.GRU only when it is called with an explicit "
             "hidden state and both of its outputs are used, and fails on this one ('list index out of range') "
             "while quantization-aware training prepares the model. Use quantize: {method: ptq, precision: int8} "
             "(the .tflite export decomposes the GRU first, formats/tflite/torch_recurrent.py) or precision: dynamic.")


def post_training(artifact: Artifact, config: "QuantizeConfig", context) -> Artifact:
    """Record the plan; the exporters quantize (with the calibration samples) when they write files."""
    return artifact.evolve("quantize", plan=config.plan())


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

    method: Literal["ptq", "qat"] = "ptq"
    precision: Literal[tuple(PLANS)] = "int8"  # type: ignore[valid-type]
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
        return plan_for(self.precision, self.io, self.per_channel, quantization_aware=self.method == "qat")

    def summary(self) -> str:
        return (f"{self.method} {self.precision} (io {self.io}, "
                f"{'per-channel' if self.per_channel else 'per-tensor'})")
