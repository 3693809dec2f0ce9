"""What every configuration model shares: the strict pydantic base and the annotated value types.

Recipe sections (edgekit.recipe) and stage configurations (edgekit.stages) both build on these, so a
stage's configuration does not depend on the recipe layer above it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from edgekit.sizes import parse_size

ARCHS = ("cnn_small", "cnn_tiny", "mlp", "ds_cnn", "resnet8", "mobilenet_v1")
Arch = Literal["cnn_small", "cnn_tiny", "mlp", "ds_cnn", "resnet8", "mobilenet_v1"]
Framework = Literal["keras", "torch"]
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(int)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class Strict(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
