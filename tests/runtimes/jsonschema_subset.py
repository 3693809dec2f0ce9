"""A tiny JSON Schema validator for the subset edgekit's schemas use (the `jsonschema` package is not a
dependency): type (a name or a list), properties, required, additionalProperties (bool or schema),
items (a schema), enum, minimum, and $ref to "#/$defs/<name>". Annotations (title, description,
$schema, $id, $defs) are ignored. Any other keyword raises, so a schema cannot silently use a rule
this validator would skip.

    errors = validate(instance, schema)   # [] when valid, else ["$.inputs[0].shape: ...", ...]
"""

from __future__ import annotations

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description"}
CHECKED = {"type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "$ref"}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _resolve(ref: str, root: dict) -> dict:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r} (only {prefix}<name>)")
    return root["$defs"][ref[len(prefix):]]


def validate(instance, schema: dict, root: dict | None = None, where: str = "$") -> list[str]:
    """Every violation of `schema` by `instance`, as "path: message" strings."""
    root = schema if root is None else root
    unknown = set(schema) - ANNOTATIONS - CHECKED
    if unknown:
        raise ValueError(f"{where}: schema keywords {sorted(unknown)} are not supported by this validator")
    if "$ref" in schema:
        return validate(instance, _resolve(schema["$ref"], root), root, where)
    errors: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[name](instance) for name in names):
            return [f"{where}: expected {' or '.join(names)}, got {type(instance).__name__} {instance!r:.60}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} is not one of {schema['enum']}")
    if "minimum" in schema and _TYPES["number"](instance) and instance < schema["minimum"]:
        errors.append(f"{where}: {instance} < minimum {schema['minimum']}")
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{where}: missing required property '{key}'")
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in properties:
                errors += validate(value, properties[key], root, f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unexpected property '{key}'")
            elif isinstance(extra, dict):
                errors += validate(value, extra, root, f"{where}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, value in enumerate(instance):
            errors += validate(value, schema["items"], root, f"{where}[{i}]")
    return errors


def check_schema(schema: dict, root: dict | None = None, where: str = "#") -> None:
    """Raise ValueError if `schema` (recursively) uses a keyword outside the supported subset."""
    root = schema if root is None else root
    unknown = set(schema) - ANNOTATIONS - CHECKED
    if unknown:
        raise ValueError(f"{where}: unsupported keywords {sorted(unknown)}")
    if "$ref" in schema:
        _resolve(schema["$ref"], root)
    for name, sub in schema.get("properties", {}).items():
        check_schema(sub, root, f"{where}/properties/{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            check_schema(schema[key], root, f"{where}/{key}")
    for name, sub in schema.get("$defs", {}).items():
        check_schema(sub, root, f"{where}/$defs/{name}")
