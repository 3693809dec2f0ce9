"""Precision plans: what a quantize stage asks the exporters to produce, as typed objects.

A plan says *what* precision a shipped file has (int8 full integer, int16x8, dynamic-range int8,
float16), the type of the file's inputs and outputs, whether weights are quantized per channel, and
which layers take another precision than the rest (`layers`: the recipe's `keep_float` and
`overrides`, resolved to the model's layer names), and how a calibrated plan's activation ranges are
chosen from the calibration samples (`calibration`). It says nothing about *how*: each format
realizes each plan for each framework in its own package (`edgekit.formats.<fmt>`), and declares
there, once, the plans it refuses.

    >>> plan = plan_for("int8", io="int8", per_channel=True)
    >>> plan.name, plan.io, plan.quantization_aware
    ('int8', 'int8', False)
    >>> plan.with_layers({"head": "float"}).precision_of("head")
    'float'

Adding a precision is one `Plan` subclass here plus one realization per format (see ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Mapping

#: what a layer of a mixed plan may be instead of the plan's own precision (`Plan.layers`)
FLOAT_LAYER = "float"
LAYER_PRECISIONS = ("int16x8", FLOAT_LAYER)

#: how a calibrated plan's activation ranges are chosen (the recipe's `quantize.calibration`):
#: - minmax: the smallest and largest value seen on the calibration samples (nothing is clipped);
#: - percentile: the 99.999th percentile of |value| (symmetric), so a few extreme values do not
#:   stretch the range of everything else;
#: - entropy: the range whose 128-bin quantized histogram loses the least information (KL divergence)
#:   against the 2048-bin float one (TensorRT's calibration).
#: Each format computes them with ONNX Runtime's histogram calibration and these settings
#: (`HISTOGRAM`), so a .tflite and an .onnx of one plan are clipped by one rule.
MINMAX = "minmax"
CALIBRATIONS = (MINMAX, "percentile", "entropy")
#: histogram settings of the clipping calibrations, as ONNX Runtime's calibrators name them. ORT's
#: own entropy default (128 bins for 128 quantized bins) leaves the search a single candidate, the
#: min/max range; TensorRT's 2048 bins give it room.
HISTOGRAM = {
    "percentile": {"num_bins": 2048, "percentile": 99.999, "symmetric": True},
    "entropy": {"num_bins": 2048, "num_quantized_bins": 128, "symmetric": False},
}


@dataclass(frozen=True)
class Plan:
    """A quantization plan. `io` is the type of the shipped file's inputs and outputs; a
    quantization-aware plan carries ranges learned in training instead of calibrated ones."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    calibrated: ClassVar[bool] = False  # its activation ranges come from calibration samples
    promises_speed: ClassVar[bool] = True  # users expect it faster than float, not only smaller
    alternative: ClassVar[bool] = True  # measured as an alternative when a shipped file is flagged
    io: str = "float32"
    per_channel: bool = True
    quantization_aware: bool = False
    layers: tuple[tuple[str, str], ...] = ()  # (layer name, "int16x8" | "float"), sorted by name
    calibration: str = MINMAX  # one of CALIBRATIONS; used by calibrated plans only

    @property
    def precision(self) -> str:
        """The recipe's `precision:` value of this plan."""
        return self.name

    @property
    def mixed(self) -> bool:
        """True when some layers take another precision than the plan's."""
        return bool(self.layers)

    def precision_of(self, layer: str) -> str:
        """The precision of the layer named `layer`: its override, else the plan's."""
        return dict(self.layers).get(layer, self.name)

    def layers_at(self, precision: str) -> list[str]:
        """The layers overridden to `precision` ("float" or "int16x8")."""
        return [name for name, p in self.layers if p == precision]

    def with_layers(self, layers: Mapping[str, str]) -> "Plan":
        """The same plan with `layers` (layer name -> "int16x8" | "float") as its per-layer overrides."""
        return replace(self, layers=tuple(sorted(layers.items())))

    def quantizing_only(self, layer: str, layers: list[str]) -> "Plan":
        """The plan with every layer of `layers` but `layer` float: what `layer`'s quantization alone
        costs (the sensitivity ranking of `max_drop` and `edgekit analyze`)."""
        return self.with_layers({other: FLOAT_LAYER for other in layers if other != layer})

    def keeping_float(self, layer: str) -> "Plan":
        """The plan with `layer` float as well as its own overrides."""
        return self.with_layers({**dict(self.layers), layer: FLOAT_LAYER})

    def with_calibration(self, calibration: str) -> "Plan":
        """The same plan with activation ranges chosen by `calibration` (one of `CALIBRATIONS`)."""
        if calibration not in CALIBRATIONS:
            raise ValueError(f"unknown calibration '{calibration}'; use one of {', '.join(CALIBRATIONS)}")
        return replace(self, calibration=calibration)

    def with_io(self, io: str) -> "Plan":
        """The same plan with other input/output types (e.g. float32 I/O for an intermediate file)."""
        return replace(self, io=io)


@dataclass(frozen=True)
class Int8(Plan):
    name: ClassVar[str] = "int8"
    description: ClassVar[str] = "full integer: int8 weights and activations, calibrated (or learned in QAT)"
    calibrated: ClassVar[bool] = True
    io: str = "int8"


@dataclass(frozen=True)
class Int16x8(Plan):
    name: ClassVar[str] = "int16x8"
    description: ClassVar[str] = ("int16 activations, int8 weights, calibrated: more accurate than int8 where "
                                  "activations have outliers, as small, usually slower")
    calibrated: ClassVar[bool] = True
    promises_speed: ClassVar[bool] = False  # few CPU kernels take int16 activations: smaller, not faster
    alternative: ClassVar[bool] = False  # never smaller nor faster than int8: not an answer to a size or speed flag


@dataclass(frozen=True)
class Dynamic(Plan):
    name: ClassVar[str] = "dynamic"
    description: ClassVar[str] = "int8 weights, float activations quantized at run time"


@dataclass(frozen=True)
class Float16(Plan):
    name: ClassVar[str] = "float16"
    description: ClassVar[str] = "float16 weights, float32 inputs and outputs"
    promises_speed: ClassVar[bool] = False  # a CPU widens the weights back to float32: half the bytes, same speed


#: precision name (the recipe's `quantize.precision`) -> plan class
PLANS: dict[str, type[Plan]] = {plan.name: plan for plan in (Int8, Int16x8, Dynamic, Float16)}


def plan_for(precision: str, io: str | None = None, per_channel: bool = True,
             quantization_aware: bool = False, calibration: str = MINMAX) -> Plan:
    """The plan named `precision`, with the plan's default I/O type when `io` is None."""
    cls = PLANS[precision]
    fields = {"per_channel": per_channel, "quantization_aware": quantization_aware, "calibration": calibration}
    if io is not None:
        fields["io"] = io
    return cls(**fields)
