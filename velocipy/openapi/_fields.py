"""Schemas for every field of a document at once: parameters, bodies, responses.

A document's schemas are made together, not one by one, so that every named
type (a pydantic model, an enum, a dataclass) lands once in
`components/schemas` and each field refers to it. With pydantic installed the
work is pydantic's own `GenerateJsonSchema.generate_definitions`, the call
FastAPI makes, so both frameworks describe a declaration alike (including
pydantic's `-Input`/`-Output` split for models that read and write
differently). Without pydantic, `SchemaWriter` writes the same JSON for the
types it knows.

Before pydantic names anything, every named type is collected and two
different types with one name are refused, naming both: pydantic would
silently qualify one of them with its module path, and FastAPI's document
then changes with the import order.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
import warnings
from collections.abc import Hashable
from typing import Any

from velocipy.core._convert import strip_annotated, union_members

from ._jsonschema import BINARY_SCHEMA, REF_PREFIX, BinaryFile, DuplicateSchemaName, SchemaWriter

#: "validation": what a request may send; "serialization": what a response holds.
Mode = typing.Literal["validation", "serialization"]


@dataclasses.dataclass(frozen=True)
class Field:
    """One field to describe: its type, and the keywords that shape its schema."""

    annotation: Any
    mode: Mode = "validation"
    #: Validation keywords (gt, min_length, pattern …), as the marker gave them.
    constraints: tuple[tuple[str, Any], ...] = ()
    #: Documentation keywords that pydantic writes into the schema itself.
    title: str | None = None
    description: str | None = None
    examples: tuple[Any, ...] | None = None
    deprecated: bool | None = None
    json_schema_extra: tuple[tuple[str, Any], ...] | None = None
    #: The default, when the field has one (`NO_DEFAULT` otherwise).
    default: Any = None
    has_default: bool = False


class SchemaError(ValueError):
    """A declaration the document cannot describe; the message names it."""


def pydantic_available() -> bool:
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return False
    return True


class FieldSchemas:
    """Collects fields by key, then writes all their schemas and the shared definitions."""

    def __init__(self, *, separate_input_output_schemas: bool = True) -> None:
        self.separate = separate_input_output_schemas
        self._fields: dict[Hashable, Field] = {}
        self._where: dict[Hashable, str] = {}

    def add(self, key: Hashable, field: Field, where: str) -> None:
        """Describe `field` under `key`; `where` names it in errors ("GET /a: parameter q")."""
        self._fields[key] = field
        self._where[key] = where

    def generate(self) -> tuple[dict[Hashable, dict[str, Any]], dict[str, dict[str, Any]]]:
        """(schema of each field by key, definitions by name).

        Raises:
            SchemaError: a field's type has no JSON Schema, or two types share a name.
        """
        _check_names(field.annotation for field in self._fields.values())
        generate = self._with_pydantic if pydantic_available() else self._without_pydantic
        try:
            return generate(self._fields)
        except Exception as error:
            # Say which declaration it was: describe the fields one by one until one fails.
            for key, field in self._fields.items():
                try:
                    generate({key: field})
                except Exception as alone:
                    raise SchemaError(f"{self._where[key]}: {alone}") from alone
            raise SchemaError(str(error)) from error

    def _with_pydantic(
        self, fields: dict[Hashable, Field]
    ) -> tuple[dict[Hashable, dict[str, Any]], dict[str, dict[str, Any]]]:
        from pydantic import Field as PydanticField
        from pydantic import TypeAdapter
        from pydantic.json_schema import GenerateJsonSchema

        inputs: list[Any] = []
        keys: list[Hashable] = []
        with warnings.catch_warnings():
            # `deprecated` on a bare Annotated type warns; the schema keeps it, as FastAPI's does.
            warnings.simplefilter("ignore")
            for key, field in fields.items():
                keywords: dict[str, Any] = dict(field.constraints)
                for name in ("title", "description", "deprecated"):
                    if getattr(field, name) is not None:
                        keywords[name] = getattr(field, name)
                if field.examples is not None:
                    keywords["examples"] = list(field.examples)
                if field.json_schema_extra:
                    keywords["json_schema_extra"] = dict(field.json_schema_extra)
                if field.has_default:
                    keywords["default"] = field.default
                annotation = for_pydantic(field.annotation)
                if keywords:
                    annotation = typing.Annotated[annotation, PydanticField(**keywords)]
                mode = field.mode if self.separate else "validation"
                adapter: TypeAdapter[Any] = TypeAdapter(annotation)
                inputs.append((len(keys), mode, adapter.core_schema))
                keys.append(key)
            generator = GenerateJsonSchema(ref_template=REF_PREFIX + "{model}")
            mapping, definitions = generator.generate_definitions(inputs)
        schemas = {keys[index]: schema for (index, _), schema in mapping.items()}
        return schemas, {str(name): schema for name, schema in definitions.items()}

    def _without_pydantic(
        self, fields: dict[Hashable, Field]
    ) -> tuple[dict[Hashable, dict[str, Any]], dict[str, dict[str, Any]]]:
        writers = {"validation": SchemaWriter("validation"), "serialization": SchemaWriter()}
        if self.separate:
            writers["serialization"] = SchemaWriter("serialization")
        schemas: dict[Hashable, dict[str, Any]] = {}
        for key, field in fields.items():
            schema = writers[field.mode].schema(field.annotation, dict(field.constraints))
            for name in ("title", "description", "deprecated"):
                if getattr(field, name) is not None:
                    schema[name] = getattr(field, name)
            if field.examples is not None:
                schema["examples"] = list(field.examples)
            if field.json_schema_extra:
                schema.update(dict(field.json_schema_extra))
            if field.has_default:
                schema["default"] = _plain(field.default)
            schemas[key] = schema
        definitions: dict[str, dict[str, Any]] = {}
        for writer in writers.values():
            definitions.update(writer.definitions)
        return schemas, definitions


def as_files(annotation: Any) -> Any:
    """`annotation` with every `UploadFile` and `bytes` in it standing for a file's content."""
    from velocipy.core._uploads import UploadFile

    bare = strip_annotated(annotation)
    if bare is bytes or (isinstance(bare, type) and issubclass(bare, UploadFile)):
        return BinaryFile
    members = union_members(bare)
    if members is not None:
        return typing.Union[tuple(as_files(member) for member in members)]  # noqa: UP007
    origin = typing.get_origin(bare)
    if origin in (list, set, frozenset, tuple):
        args = tuple(arg if arg is Ellipsis else as_files(arg) for arg in typing.get_args(bare))
        return origin[args] if args else origin
    return annotation


def for_pydantic(annotation: Any) -> Any:
    """`BinaryFile` as pydantic can take it: bytes, described as a file."""
    from pydantic import WithJsonSchema

    if annotation is BinaryFile:
        return typing.Annotated[bytes, WithJsonSchema(dict(BINARY_SCHEMA))]
    members = union_members(annotation)
    if members is not None:
        return typing.Union[tuple(for_pydantic(member) for member in members)]  # noqa: UP007
    origin = typing.get_origin(annotation)
    if origin in (list, set, frozenset, tuple):
        args = tuple(a if a is Ellipsis else for_pydantic(a) for a in typing.get_args(annotation))
        return origin[args]
    return annotation


def _plain(value: Any) -> Any:
    """A default as JSON says it (enums by value)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def _check_names(annotations: typing.Iterable[Any]) -> None:
    """Refuse two named types (models, enums, dataclasses) that would share a schema name."""
    seen: dict[str, Any] = {}
    visited: set[int] = set()

    def visit(annotation: Any) -> None:
        annotation = strip_annotated(annotation)
        if id(annotation) in visited:
            return
        visited.add(id(annotation))
        members = union_members(annotation)
        args = members if members is not None else typing.get_args(annotation)
        for arg in args:
            if arg is not Ellipsis and not isinstance(arg, (str, int, float, bytes)):
                visit(arg)
        if not isinstance(annotation, type) or not _is_named(annotation):
            return
        name = annotation.__name__
        known = seen.setdefault(name, annotation)
        if known is not annotation:
            raise DuplicateSchemaName(name, known, annotation)
        for hint in _field_types(annotation):
            visit(hint)

    for annotation in annotations:
        visit(annotation)


def _is_named(kind: type[Any]) -> bool:
    return (
        issubclass(kind, enum.Enum)
        or dataclasses.is_dataclass(kind)
        or callable(getattr(kind, "model_json_schema", None))
        or (issubclass(kind, dict) and hasattr(kind, "__required_keys__"))
    )


def _field_types(kind: type[Any]) -> list[Any]:
    model_fields = getattr(kind, "model_fields", None)
    if isinstance(model_fields, dict):
        return [info.annotation for info in model_fields.values()]
    if issubclass(kind, enum.Enum):
        return []
    try:
        return list(typing.get_type_hints(kind).values())
    except Exception:  # an unresolvable annotation: pydantic will say so itself
        return []
