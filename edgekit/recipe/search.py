"""The `search:` block of a recipe: what `edgekit search` may change, what it optimizes, its budget.

    search:
      trials: 16                                  # budget (--trials overrides)
      objectives: [size, accuracy]                # size | latency | accuracy | mae, optionally .<format>
      space:                                      # recipe paths, as --set writes them
        stages.0.distill.student.width: [0.25, 0.5]
        stages.1.prune.sparsity: {low: 0.5, high: 0.9, step: 0.1}

The gates are the constraints. This module checks the block's own shape; the paths and values are
checked against the recipe they change by `edgekit.search.space` (every value parsed as a recipe,
before anything trains). `compress` ignores the block and runs the recipe as written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, ValidationError, field_validator, model_validator

from edgekit.config import Strict

OBJECTIVES = {  # name -> (direction, what it measures)
    "size": ("minimize", "bytes of the final file"),
    "latency": ("minimize", "p50 latency (ms) of the final file on its runtime"),
    "accuracy": ("maximize", "top-1 accuracy of the final file on its runtime, validation split"),
    "mae": ("minimize", "mean absolute error of the final file on its runtime, validation split"),
}
FROZEN_PATHS = ("version", "name", "output", "search")  # what a trial may not change


@dataclass(frozen=True)
class Objective:
    """One objective: `name` of OBJECTIVES, measured on the final file of format `fmt`."""

    name: str
    fmt: str

    @property
    def key(self) -> str:
        return f"{self.name}.{self.fmt}"

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.name][0]

    @property
    def label(self) -> str:
        unit = {"size": "bytes", "latency": "p50 ms", "accuracy": "accuracy, validation", "mae": "MAE, validation"}
        return f"model.{self.fmt} {unit[self.name]}"


Scalar = Union[bool, int, float, str, None]


class Range(Strict):
    """A numeric range: integers when `low` and `high` (and `step`) are integers, else floats."""

    low: Union[int, float]
    high: Union[int, float]
    log: bool = False
    step: Optional[Annotated[Union[int, float], Field(gt=0)]] = None

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high}); swap them")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("give either log: true or step, not both (Optuna samples one or the other)")
        return self

    @property
    def integer(self) -> bool:
        numbers = [self.low, self.high] + ([self.step] if self.step is not None else [])
        return all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)

    def ends(self) -> list[Union[int, float]]:
        return [self.low, self.high]


class SearchConfig(Strict):
    trials: Annotated[int, Field(ge=1)] = 16
    objectives: list[str] = Field(default_factory=lambda: ["size", "accuracy"], min_length=1)
    space: dict[str, Union[Range, list[Scalar]]] = Field(min_length=1)
    sampler: Literal["nsga2", "tpe"] = "nsga2"
    population: Annotated[int, Field(ge=2)] = 8  # trials per batch: one NSGA-II generation
    select: Optional[str] = None  # objective that orders the feasible non-dominated trials; default the first
    seed: Optional[Annotated[int, Field(ge=0, lt=2**32)]] = None  # default: the recipe's seed

    @field_validator("space", mode="before")
    @classmethod
    def _space_shapes(cls, space: Any) -> Any:
        if not isinstance(space, dict):
            return space
        space = dict(space)
        for path, values in list(space.items()):
            where = f"search.space.{path}"
            parts = str(path).split(".")
            if not path or "" in parts:
                raise ValueError(f"{where}: not a key path; write it as --set does, e.g. stages.0.prune.sparsity")
            if parts[0] in FROZEN_PATHS:
                raise ValueError(f"{where}: '{parts[0]}' cannot be searched (every trial keeps the recipe's "
                                 f"{', '.join(FROZEN_PATHS)})")
            if isinstance(values, list):
                if not values:
                    raise ValueError(f"{where}: the list of choices is empty; give at least one value")
                bad = [v for v in values if isinstance(v, (list, dict))]
                if bad:
                    raise ValueError(f"{where}: choices are single values (numbers, strings, true/false, null), "
                                     f"got {bad[0]!r}")
                if len({repr(v) for v in values}) != len(values):
                    raise ValueError(f"{where}: a choice is listed twice in {values}")
            elif isinstance(values, dict):
                missing = [k for k in ("low", "high") if k not in values]
                if missing:
                    raise ValueError(f"{where}: a range needs low and high (missing {', '.join(missing)})")
                try:
                    space[path] = Range.model_validate(values)
                except ValidationError as exc:
                    problem = exc.errors()[0]
                    key = ".".join(str(p) for p in problem["loc"])
                    raise ValueError(f"{where}{'.' + key if key else ''}: "
                                     f"{problem['msg'].removeprefix('Value error, ')}") from None
            else:
                raise ValueError(f"{where}: give a list of choices, e.g. [0.25, 0.5], or a range "
                                 f"{{low: 0.5, high: 0.9}}; got {values!r}")
        return space

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, objectives: list[str]) -> list[str]:
        for text in objectives:
            name = text.split(".", 1)[0]
            if name not in OBJECTIVES:
                raise ValueError(f"search.objectives: unknown objective '{text}'; use "
                                 f"{', '.join(OBJECTIVES)} (optionally .<format>, e.g. size.onnx)")
        if len(set(objectives)) != len(objectives):
            raise ValueError(f"search.objectives lists an objective twice: {objectives}")
        return objectives

    def objective_list(self, formats: list[str]) -> list[Objective]:
        """The objectives with their formats: the one named, else tflite when exported, else the first."""
        default = "tflite" if "tflite" in formats else formats[0]
        found = []
        for text in self.objectives:
            name, _, fmt = text.partition(".")
            found.append(Objective(name, fmt or default))
        return found

    def selected(self, formats: list[str]) -> Objective:
        """The objective that picks the shipped trial among the feasible non-dominated ones."""
        objectives = self.objective_list(formats)
        if self.select is None:
            return objectives[0]
        return next(o for o in objectives if self.select in (o.name, o.key))


def check_search(search: SearchConfig, formats: list[str], runtimes: list[str], task: str,
                 validation_split: float, runtimes_of) -> None:
    """Cross-checks against the rest of the recipe: each objective is measured by this recipe (its
    format exported, its runtime evaluated, accuracy for classification and MAE for regression),
    `select` is an objective, and trials have a validation split to be measured on."""
    objectives = search.objective_list(formats)
    for text, objective in zip(search.objectives, objectives):
        if objective.fmt not in formats:
            raise ValueError(f"search.objectives: '{text}' is measured on the .{objective.fmt} file, which "
                             f"export.formats {formats} does not make; add {objective.fmt} to export.formats")
        if objective.name != "size" and not set(runtimes_of(objective.fmt)) & set(runtimes):
            raise ValueError(f"search.objectives: '{text}' is measured by running the .{objective.fmt} file, "
                             f"but evaluate.runtimes {runtimes} runs none of its runtimes")
        wrong = {"accuracy": "regression", "mae": "classification"}.get(objective.name)
        if wrong == task:
            other = "mae" if objective.name == "accuracy" else "accuracy"
            raise ValueError(f"search.objectives: '{text}' is not measured for task {task}; use '{other}'")
    if search.select is not None:
        names = {o.name for o in objectives} | {o.key for o in objectives}
        if search.select not in names:
            raise ValueError(f"search.select: '{search.select}' is not one of search.objectives {search.objectives}")
    if validation_split <= 0:
        raise ValueError("search: trials are compared on the validation split (the test split never chooses), "
                         "which is empty; set data.validation_split above 0")
