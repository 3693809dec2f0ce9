"""The search space: recipe paths and their values, checked against the recipe and sampled by Optuna.

A trial's recipe is the user's recipe (as read, after `--set`) with each searched path set the way
`--set path=value` sets it, and without its `search:` block. Every value a trial can take is checked
before anything trains: each choice, and both ends of each range, is set alone on the recipe, which
must then parse, be supported and name files that exist; the first that is not ends the search with
exit 2 naming `search.space.<path>`.

    >>> params = suggest(trial, recipe.search.space)      # {"stages.1.prune.sparsity": 0.7, ...}
    >>> trial_recipe(recipe, params).stages[1].prune.sparsity
    0.7
"""

from __future__ import annotations

import copy
from typing import Any

from edgekit.errors import RecipeError
from edgekit.recipe import Recipe, parse_recipe, set_value
from edgekit.recipe.search import Range
from edgekit.recipe.support import check_support
from edgekit.run.validation import check_files


def trial_data(recipe: Recipe, params: dict[str, Any]) -> dict:
    """The recipe mapping of a trial: the user's, with `params` set and no `search:` block."""
    data = copy.deepcopy(recipe._data)
    data.pop("search", None)
    for path, value in params.items():
        set_value(data, path, value)
    return data


def trial_recipe(recipe: Recipe, params: dict[str, Any]) -> Recipe:
    """The trial's Recipe, reading files relative to the user's recipe like the user's does."""
    data = trial_data(recipe, params)
    parsed = parse_recipe(data, str(recipe.source or "<recipe>"))
    parsed._source = recipe.source
    parsed._data = data
    return parsed


def check_space(recipe: Recipe) -> None:
    """RecipeError (exit 2) naming `search.space.<path>` for the first value a trial could not run with."""
    for path, values in recipe.search.space.items():
        where = f"{recipe.where('search', 'space', path)}"
        candidates = values.ends() if isinstance(values, Range) else values
        for value in candidates:
            try:
                trial = trial_recipe(recipe, {path: value})
                check_support(trial)
                check_files(trial)
            except RecipeError as exc:
                raise RecipeError(f"{where}: the value {value!r} makes a recipe edgekit cannot run:\n"
                                  f"{_indent(_without_source(str(exc), recipe))}\nFix the path or the value.") from None
            except Exception as exc:  # InputError from the files, or a path the mapping does not have
                if not hasattr(exc, "exit_code"):
                    raise
                raise RecipeError(f"{where}: the value {value!r}: {_without_source(str(exc), recipe)}") from None


def _without_source(message: str, recipe: Recipe) -> str:
    source = str(recipe.source or "<recipe>")
    return message.removeprefix(f"{source}: ").removeprefix(f"{source} ")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" if not line.startswith("  ") else line for line in text.splitlines())


def suggest(trial, space: dict) -> dict[str, Any]:
    """One value per path from an Optuna trial: categorical choices, int or float ranges (log, step)."""
    params: dict[str, Any] = {}
    for path, values in space.items():
        if isinstance(values, Range):
            if values.integer:
                params[path] = trial.suggest_int(path, values.low, values.high, step=values.step or 1, log=values.log)
            else:
                value = trial.suggest_float(path, float(values.low), float(values.high), step=values.step,
                                            log=values.log)
                params[path] = float(f"{value:.12g}")  # 0.3, not the 0.30000000000000004 of a float step
        else:
            params[path] = trial.suggest_categorical(path, values)
    return params
