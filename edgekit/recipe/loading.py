"""Reading recipes: YAML with line numbers, `--set` overrides, and readable errors.

Recipes are read with a `yaml.SafeLoader` (never a loader that can build Python objects). The line
of every key is kept so that pydantic's errors become one `RecipeError` that points at the line and
suggests the key that was probably meant.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any, Optional, Union, get_args, get_origin, Annotated

import yaml
from pydantic import BaseModel, ValidationError

from edgekit.errors import RecipeError
from edgekit.recipe.models import Recipe, _dotted, _line_for


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


def _check_duplicate_keys(node: yaml.Node, source: str) -> None:
    """YAML keeps the last of two equal keys silently; a recipe with one is almost surely a mistake."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise RecipeError(f"{source}: line {line}: key '{key_node.value}' is given twice (first at line "
                                  f"{seen[key_node.value]}); keep one.")
            seen[key_node.value] = line
            _check_duplicate_keys(value_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item, source)


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
    if node is not None:
        _check_duplicate_keys(node, source)
    if data is None:
        raise RecipeError(f"{source}: the recipe is empty. Start from `edgekit init` or recipes/quickstart.yaml.")
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping of keys (version, data, teacher, ...), not a {type(data).__name__}.")
    return data, _index_lines(node) if node is not None else {}


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
    named = re.match(r"^([A-Za-z0-9_.]+): ", message)
    if named and named.group(1) == _dotted(loc):
        return f"{at}{message}"
    if named and named.group(1).startswith(_dotted(loc) + "."):  # names a key below loc, e.g. search.space.<path>
        line = lines.get(loc + (named.group(1)[len(_dotted(loc)) + 1:],)) or line
        return f"{f'line {line}: ' if line else ''}{message}"
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
    if not [p for p in path.strip().split(".") if p]:
        raise RecipeError(f"--set {assignment!r}: the key path is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    set_value(data, path, value)


def set_value(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` (already parsed) at the dotted key `path` of the raw recipe mapping, creating
    missing mappings and lists on the way, as `--set path=value` does (`edgekit search` sets trial
    values with it). `path` names at least one key."""
    parts = [p for p in path.strip().split(".") if p]
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
    recipe._data = copy.deepcopy(data)
    return recipe


def resolved_yaml(recipe: Recipe) -> str:
    """The recipe with every default filled in, as written to `recipe.resolved.yaml`."""
    data = recipe.model_dump(mode="json")
    data["stages"] = [stage.model_dump(mode="json") for stage in recipe.stages]
    return yaml.safe_dump(data, sort_keys=False)
