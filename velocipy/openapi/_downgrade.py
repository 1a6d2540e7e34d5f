"""Rewrite an OpenAPI 3.1 document as 3.0.3, for client generators that reject 3.1.

3.1 schemas are JSON Schema 2020-12; 3.0 schemas are an older dialect. What
changes, and how each is said in 3.0:

| 3.1                                   | 3.0.3                                          |
|---------------------------------------|------------------------------------------------|
| `anyOf: [X, {type: null}]`            | X with `nullable: true`                        |
| `type: [T, "null"]`                   | `type: T`, `nullable: true`                    |
| `{type: null}` alone                  | `nullable: true` (3.0 has no null type)        |
| `exclusiveMinimum: n` (a number)      | `minimum: n, exclusiveMinimum: true`           |
| `const: v`                            | `enum: [v]`                                    |
| `examples: [a, …]` in a schema        | `example: a`                                   |
| `prefixItems` (a tuple)               | `items` of their `anyOf`, with min/max items   |
| `contentMediaType` on a string        | `format: binary`                               |
| `$ref` with siblings                  | `allOf: [{$ref}]` with the siblings            |

The rewrite is pure and total: it never drops a constraint silently; a
keyword 3.0 cannot express is kept as an `x-` extension.
"""

from __future__ import annotations

import copy
from typing import Any

#: Keys whose value is a schema or holds schemas, where the walk goes on.
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_SCHEMA_VALUES = ("items", "not", "additionalProperties")
_NULL = {"type": "null"}
#: Keywords of 3.1 that 3.0 lacks and we cannot rewrite: kept under an x- name.
_UNSUPPORTED = ("$schema", "$id", "contentEncoding", "unevaluatedProperties", "if", "then")


def downgrade(document: dict[str, Any], version: str = "3.0.3") -> dict[str, Any]:
    """A copy of the 3.1 `document`, rewritten for `version` (a 3.0.x)."""
    out = copy.deepcopy(document)
    out["openapi"] = version
    if "webhooks" in out:  # 3.0 has no webhooks: kept as an extension, not dropped
        out["x-webhooks"] = out.pop("webhooks")
    components = out.get("components", {})
    for name, schema in list(components.get("schemas", {}).items()):
        components["schemas"][name] = _schema(schema)
    for path_item in out.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                _operation(operation)
    return out


def _operation(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if "schema" in parameter:
            parameter["schema"] = _schema(parameter["schema"])
    bodies = [operation.get("requestBody", {})]
    bodies.extend(operation.get("responses", {}).values())
    for holder in bodies:
        for media in holder.get("content", {}).values():
            if "schema" in media:
                media["schema"] = _schema(media["schema"])


def _schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    nullable = False
    members = schema.get("anyOf")
    if members is not None and _NULL in members:
        nullable = True
        rest = [m for m in members if m != _NULL]
        del schema["anyOf"]
        if len(rest) == 1:
            schema = _merge(rest[0], schema)
        elif rest:
            schema["anyOf"] = rest
    for key in _SCHEMA_LISTS:
        if key in schema:
            schema[key] = [_schema(s) for s in schema[key]]
    for key in _SCHEMA_VALUES:
        if isinstance(schema.get(key), dict):
            schema[key] = _schema(schema[key])
    if "properties" in schema:
        schema["properties"] = {k: _schema(v) for k, v in schema["properties"].items()}
    if nullable:
        schema["nullable"] = True
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [t for t in kind if t != "null"]
        if len(named) < len(kind):
            schema["nullable"] = True
        if len(named) == 1:
            schema["type"] = named[0]
        else:
            del schema["type"]
            schema["anyOf"] = [{"type": t} for t in named]
    elif kind == "null":
        del schema["type"]
        schema["nullable"] = True
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        bound = schema.get(exclusive)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool):
            schema[inclusive] = bound
            schema[exclusive] = True
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if "examples" in schema and isinstance(schema["examples"], list):
        examples = schema.pop("examples")
        if examples:
            schema["example"] = examples[0]
    if "prefixItems" in schema:
        items = [_schema(s) for s in schema.pop("prefixItems")]
        schema["items"] = items[0] if len(items) == 1 else {"anyOf": items}
    if "contentMediaType" in schema and schema.get("type") == "string":
        schema.pop("contentMediaType")
        schema["format"] = "binary"
    for key in _UNSUPPORTED:
        if key in schema:
            schema[f"x-{key.lstrip('$')}"] = schema.pop(key)
    if "$ref" in schema and len(schema) > 1:
        # 3.0 ignores a $ref's siblings: say them beside an allOf instead.
        schema = {"allOf": [{"$ref": schema.pop("$ref")}], **schema}
    return schema


def _merge(inner: dict[str, Any], outer: dict[str, Any]) -> dict[str, Any]:
    """`inner` (the one non-null member) with the keywords its Optional carried (title …)."""
    if "$ref" in inner:
        return {"allOf": [inner], **outer}
    return {**inner, **outer}
