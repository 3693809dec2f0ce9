"""What every configuration model shares: the strict pydantic base and the annotated value types.

Recipe sections (edgekit.recipe) and stage configurations (edgekit.stages) both build on these, so a
stage's configuration does not depend on the recipe layer above it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from edgekit.sizes import parse_size
from edgekit.usercode import split

ARCHS = ("cnn_small", "cnn_tiny", "mlp", "ds_cnn", "resnet8", "mobilenet_v1", "transformer", "lstm", "gru")
Arch = Literal[ARCHS]  # edgekit.zoo.ARCHITECTURES' names (a core sibling: a unit test keeps them equal)
Framework = Literal["keras", "torch"]
Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(int)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _code_reference(value: str) -> str:
    """A `custom_objects:` value, checked for shape only (nothing is imported): "layers",
    "pkg.layers", or "module:NAME" of a dict in it."""
    split(value)
    return value.strip()


CodeReference = Annotated[str, AfterValidator(_code_reference)]


class Strict(BaseModel):
    """Base of every recipe section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
