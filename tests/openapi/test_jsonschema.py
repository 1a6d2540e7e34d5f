"""Our pydantic-free schema writer says exactly what pydantic says, type by type."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any, Literal

import pytest

from velocipy.openapi._jsonschema import REF_PREFIX, DuplicateSchemaName, SchemaWriter

pydantic = pytest.importorskip("pydantic")
typing_extensions = pytest.importorskip("typing_extensions")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    """How loud."""

    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0
    tags: list[str] = dataclasses.field(default_factory=list)
    color: Color | None = None


class Pair(typing_extensions.TypedDict):
    a: int
    b: str | None


TYPES: list[Any] = [
    str, int, float, bool, bytes, type(None), Any, list, dict,
    list[int], set[str], frozenset[int], tuple[int, ...], tuple[int, str],
    dict[str, int], dict[str, Any], dict[str, list[float]],
    int | None, int | str | None, list[int | None],
    Literal["a", "b"], Literal["a"], Literal[1, 2], Literal[1, "a"], Literal[True],
    Color, Level, list[Color],
    datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID,
    decimal.Decimal, Point, Pair, list[Point],
]  # fmt: skip


def pydantic_says(annotation: Any, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = pydantic.TypeAdapter(annotation).json_schema(
        mode=mode, ref_template=REF_PREFIX + "{model}"
    )
    definitions = schema.pop("$defs", {})
    if "title" in schema and "$ref" not in schema and schema.get("type") == "object":
        # A named type at the top: pydantic inlines it; we always refer to it.
        name = schema["title"]
        definitions[name] = schema
        schema = {"$ref": REF_PREFIX + name}
    elif "enum" in schema and "title" in schema:
        definitions[schema["title"]] = schema
        schema = {"$ref": REF_PREFIX + schema["title"]}
    return schema, definitions


@pytest.mark.parametrize("mode", ["validation", "serialization"])
@pytest.mark.parametrize("annotation", TYPES, ids=repr)
def test_the_same_schema_as_pydantic(annotation: Any, mode: str) -> None:
    writer = SchemaWriter(mode)
    ours = writer.schema(annotation)
    expected, definitions = pydantic_says(annotation, mode)
    assert (ours, writer.definitions) == (expected, definitions)


CONSTRAINED = [
    (int, {"ge": 1, "lt": 5, "multiple_of": 2}),
    (float, {"gt": 0.5, "le": 10}),
    (str, {"min_length": 1, "max_length": 3, "pattern": "^a"}),
    (list[int], {"min_length": 1, "max_length": 3}),
    (int | None, {"ge": 1}),
    (str | None, {"min_length": 3, "max_length": 50, "pattern": "^fixedquery$"}),
]


@pytest.mark.parametrize(("annotation", "constraints"), CONSTRAINED, ids=repr)
def test_constraints_land_where_pydantic_puts_them(
    annotation: Any, constraints: dict[str, Any]
) -> None:
    ours = SchemaWriter().schema(annotation, constraints)
    expected, _ = pydantic_says(Annotated[annotation, pydantic.Field(**constraints)], "validation")
    assert ours == expected


def test_two_types_with_one_name_are_refused_naming_both() -> None:
    first = Color

    class Color2(enum.Enum):  # a different enum that calls itself Color
        X = "x"

    Color2.__name__ = "Color"
    writer = SchemaWriter()
    writer.schema(first)
    with pytest.raises(DuplicateSchemaName) as raised:
        writer.schema(Color2)
    assert "test_jsonschema.Color" in str(raised.value)
    assert "Color2" in str(raised.value)
