"""JSON Schema without pydantic: built-in types, enums, dataclasses, TypedDicts.

When pydantic is installed the document is built with pydantic's own schema
generator, as FastAPI's is, so both frameworks describe a type the same way.
This module is what describes types when it is not: it writes, for every type
it knows, exactly the JSON that pydantic would (a test compares the two type
by type), so an app's document does not change when pydantic comes or goes.
Named types (enums, dataclasses, TypedDicts) go to `definitions` and are
referred to by `$ref`, as pydantic does.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Union

from velocipy.core._convert import strip_annotated

REF_PREFIX = "#/components/schemas/"

#: How an uploaded file is described (FastAPI's words for `UploadFile` and `File()` bytes).
BINARY_SCHEMA = {"type": "string", "contentMediaType": "application/octet-stream"}


class BinaryFile:
    """Stands for an uploaded file's content in an annotation that is only described."""


#: Types described by a fixed schema (pydantic's, in validation mode).
_FIXED: dict[Any, dict[str, Any]] = {
    BinaryFile: BINARY_SCHEMA,
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"format": "binary", "type": "string"},
    type(None): {"type": "null"},
    datetime.datetime: {"format": "date-time", "type": "string"},
    datetime.date: {"format": "date", "type": "string"},
    datetime.time: {"format": "time", "type": "string"},
    datetime.timedelta: {"format": "duration", "type": "string"},
    uuid.UUID: {"format": "uuid", "type": "string"},
}

#: Constraint keyword → JSON Schema keyword (lengths depend on the type; see `_lengths`).
_NUMERIC = {
    "gt": "exclusiveMinimum",
    "ge": "minimum",
    "lt": "exclusiveMaximum",
    "le": "maximum",
    "multiple_of": "multipleOf",
}


class UnsupportedType(TypeError):
    """The annotation has no JSON Schema we can write without pydantic."""


class SchemaWriter:
    """Writes schemas for annotations, collecting named types in `definitions`."""

    def __init__(self, mode: str = "validation") -> None:
        #: "validation" (what a request may send) or "serialization" (what we answer).
        self.mode = mode
        self.definitions: dict[str, dict[str, Any]] = {}
        self._named: dict[str, Any] = {}

    def schema(self, annotation: Any, constraints: dict[str, Any] | None = None) -> dict[str, Any]:
        """The schema of `annotation`, with `constraints` (gt, min_length, pattern …) applied."""
        schema = self._schema(strip_annotated(annotation))
        if constraints:
            schema = _constrain(schema, constraints)
        return schema

    def _schema(self, annotation: Any) -> dict[str, Any]:
        if annotation is Any or annotation is object:
            return {}
        fixed = _FIXED.get(annotation)
        if fixed is not None:
            return dict(fixed)
        if annotation is decimal.Decimal:
            if self.mode == "serialization":
                return {"type": "string"}
            return {"anyOf": [{"type": "number"}, {"type": "string"}]}
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Union or origin is types.UnionType:
            return {"anyOf": [self.schema(arg) for arg in args]}
        if origin is typing.Literal:
            return _literal(args)
        if origin is typing.Annotated:
            return self.schema(annotation)
        if annotation in (list, set, frozenset, tuple) or origin in (list, set, frozenset, tuple):
            return self._sequence(origin or annotation, args)
        if annotation is dict or origin is dict:
            values = self.schema(args[1]) if len(args) == 2 else {}
            return {"additionalProperties": values or True, "type": "object"}
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            return self._named_schema(annotation, self._enum)
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
            return self._named_schema(annotation, self._dataclass)
        if _is_typeddict(annotation):
            return self._named_schema(annotation, self._typeddict)
        raise UnsupportedType(f"no JSON Schema for {annotation!r} without pydantic")

    def _sequence(self, kind: Any, args: tuple[Any, ...]) -> dict[str, Any]:
        if kind is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            count = len(args)
            return {
                "maxItems": count,
                "minItems": count,
                "prefixItems": [self.schema(arg) for arg in args],
                "type": "array",
            }
        schema: dict[str, Any] = {"items": self.schema(args[0]) if args else {}, "type": "array"}
        if kind in (set, frozenset):
            schema["uniqueItems"] = True
        return schema

    def _named_schema(
        self, kind: type[Any], build: Callable[[type[Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        name = kind.__name__
        known = self._named.get(name)
        if known is None:
            self._named[name] = kind
            self.definitions[name] = {}  # reserved first: a type may refer to itself
            self.definitions[name] = build(kind)
        elif known is not kind:
            raise DuplicateSchemaName(name, known, kind)
        return {"$ref": f"{REF_PREFIX}{name}"}

    def _enum(self, kind: type[enum.Enum]) -> dict[str, Any]:
        values = [member.value for member in kind]
        schema: dict[str, Any] = {"enum": values, "title": kind.__name__}
        types_ = {_json_type(value) for value in values}
        if len(types_) == 1 and None not in types_:
            schema["type"] = types_.pop()
        doc = kind.__dict__.get("__doc__")  # its own docstring, not one it inherits
        if doc:
            schema["description"] = inspect.cleandoc(doc)
        return schema

    def _dataclass(self, kind: type[Any]) -> dict[str, Any]:
        hints = typing.get_type_hints(kind, include_extras=True)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for item in dataclasses.fields(kind):
            properties[item.name] = self._property(item.name, hints[item.name])
            if item.default is not dataclasses.MISSING:
                properties[item.name]["default"] = item.default
            elif item.default_factory is dataclasses.MISSING:
                required.append(item.name)
        return _object(kind.__name__, properties, required)

    def _typeddict(self, kind: type[Any]) -> dict[str, Any]:
        hints = typing.get_type_hints(kind, include_extras=True)
        properties = {name: self._property(name, hint) for name, hint in hints.items()}
        required = [name for name in hints if name in kind.__required_keys__]
        return _object(kind.__name__, properties, required)

    def _property(self, name: str, annotation: Any) -> dict[str, Any]:
        schema = self.schema(annotation)
        if not is_reference(schema):
            schema["title"] = title_of(name)
        return schema


def is_reference(schema: dict[str, Any]) -> bool:
    """A `$ref`, or an Optional one: pydantic gives such fields no title of their own."""
    if "$ref" in schema:
        return True
    members = schema.get("anyOf")
    return (
        members is not None
        and len(members) == 2
        and {"type": "null"} in members
        and any("$ref" in member for member in members)
    )


def _is_typeddict(annotation: Any) -> bool:
    # `typing.is_typeddict` misses typing_extensions' TypedDict before Python 3.12.
    return (
        isinstance(annotation, type)
        and issubclass(annotation, dict)
        and hasattr(annotation, "__required_keys__")
    )


class DuplicateSchemaName(ValueError):
    """Two different types would share one name in `components/schemas`."""

    def __init__(self, name: str, first: Any, second: Any) -> None:
        super().__init__(
            f"two types are both named {name!r} in the OpenAPI schema: "
            f"{_qualified(first)} and {_qualified(second)}; rename one"
        )
        self.name = name


def _qualified(kind: Any) -> str:
    return f"{getattr(kind, '__module__', '?')}.{getattr(kind, '__qualname__', kind)}"


def title_of(name: str) -> str:
    """pydantic's default title for a field name: `item_id` → `Item Id`."""
    return name.title().replace("_", " ")


def _object(title: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"properties": properties}
    if required:
        schema["required"] = required
    schema["title"] = title
    schema["type"] = "object"
    return schema


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _literal(values: tuple[Any, ...]) -> dict[str, Any]:
    plain = [v.value if isinstance(v, enum.Enum) else v for v in values]
    schema: dict[str, Any] = {"const": plain[0]} if len(plain) == 1 else {"enum": plain}
    kinds = {_json_type(v) for v in plain}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def _constrain(schema: dict[str, Any], constraints: dict[str, Any]) -> dict[str, Any]:
    """Apply constraints where pydantic puts them: on the non-null member of an Optional."""
    members = schema.get("anyOf")
    if members is not None:
        return {
            **schema,
            "anyOf": [m if m == {"type": "null"} else _constrain(m, constraints) for m in members],
        }
    out = dict(schema)
    is_array = out.get("type") == "array"
    for key, value in constraints.items():
        if value is None:
            continue
        if key in _NUMERIC:
            out[_NUMERIC[key]] = value
        elif key == "min_length":
            out["minItems" if is_array else "minLength"] = value
        elif key == "max_length":
            out["maxItems" if is_array else "maxLength"] = value
        elif key == "pattern":
            out["pattern"] = value
    return out
