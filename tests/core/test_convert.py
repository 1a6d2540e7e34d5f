"""Converters from wire values to annotated types, table-driven."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import annotated_types
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from velocipy.core._convert import (
    Invalid,
    converter_for,
    is_scalar,
    is_sequence_of_scalars,
)
from velocipy.core._datastructures import parse_query


class Size(enum.Enum):
    S = 1
    M = 2


@dataclasses.dataclass
class Inner:
    n: int
    label: str = "x"


GOOD: list[tuple[Any, Any, Any]] = [
    (int, "42", 42),
    (int, " -7 ", -7),
    (int, 3.0, 3),
    (int, 5, 5),
    (float, "2.5", 2.5),
    (float, 2, 2.0),
    (bool, "Yes", True),
    (bool, "off", False),
    (bool, 1, True),
    (bool, False, False),
    (str, "s", "s"),
    (bytes, "b", b"b"),
    (
        uuid.UUID,
        "12345678-1234-5678-1234-567812345678",
        uuid.UUID(int=0x12345678123456781234567812345678),
    ),
    (decimal.Decimal, "1.10", decimal.Decimal("1.10")),
    (datetime.date, "2026-11-27", datetime.date(2026, 11, 27)),
    (datetime.datetime, "2026-11-27T10:00:00", datetime.datetime(2026, 11, 27, 10)),
    (datetime.time, "10:30", datetime.time(10, 30)),
    (Size, 2, Size.M),
    (Size, "1", Size.S),
    (Literal[1, "a"], "1", 1),
    (Literal[1, "a"], "a", "a"),
    (int | None, None, None),
    (int | str, "x", "x"),
    (Annotated[int, annotated_types.Gt(1)], "3", 3),
    (list[int], ["1", 2], [1, 2]),
    (set[str], ["a", "a"], {"a"}),
    (tuple[int, str], [1, "a"], (1, "a")),
    (tuple[int, ...], [1, 2], (1, 2)),
    (list, [1, "a"], [1, "a"]),
    (dict, {"a": 1}, {"a": 1}),
    (dict[str, int], {"a": "1"}, {"a": 1}),
    (Inner, {"n": "4"}, Inner(4)),
    (Inner, Inner(1), Inner(1)),
    (Any, {"x": 1}, {"x": 1}),
    (type(None), None, None),
]


@pytest.mark.parametrize(("annotation", "raw", "expected"), GOOD)
def test_converts(annotation: Any, raw: Any, expected: Any) -> None:
    assert converter_for(annotation)(raw) == expected


BAD: list[tuple[Any, Any, str, list[Any]]] = [
    (int, "4.5", "int_parsing", []),
    (int, 4.5, "int_from_float", []),
    (int, "9" * 5000, "int_parsing", []),
    (float, "abc", "float_parsing", []),
    (bool, "maybe", "bool_parsing", []),
    (bool, 2, "bool_parsing", []),
    (str, 1, "string_type", []),
    (bytes, 1, "bytes_type", []),
    (uuid.UUID, "nope", "uuid_parsing", []),
    (uuid.UUID, 5, "uuid_type", []),
    (decimal.Decimal, "NaN", "finite_number", []),
    (decimal.Decimal, "x", "decimal_parsing", []),
    (datetime.date, "27/11/2026", "date_from_datetime_parsing", []),
    (Size, 3, "enum", []),
    (Size, [1], "enum", []),
    (Literal["a"], "b", "literal_error", []),
    (int | None, "x", "int_parsing", []),
    (list[int], "1", "list_type", []),
    (list[int], [1, "x"], "int_parsing", [1]),
    (tuple[int, str], [1], "missing", [1]),
    (tuple[int, str], 1, "tuple_type", []),
    (dict, [1], "dict_type", []),
    (dict[str, int], {"a": "x"}, "int_parsing", ["a"]),
    (Inner, [], "dataclass_type", []),
    (Inner, {"n": "x"}, "int_parsing", ["n"]),
    (Inner, {}, "missing", ["n"]),
    (type(None), 1, "none_required", []),
]


@pytest.mark.parametrize(("annotation", "raw", "kind", "loc"), BAD)
def test_rejects_with_type_and_location(
    annotation: Any, raw: Any, kind: str, loc: list[Any]
) -> None:
    with pytest.raises(Invalid) as raised:
        converter_for(annotation)(raw)
    first = raised.value.errors[0]
    assert first["type"] == kind
    assert first["loc"] == loc
    assert first["msg"]


def test_union_of_two_reports_both_failures() -> None:
    with pytest.raises(Invalid) as raised:
        converter_for(int | uuid.UUID)("x")
    assert [e["type"] for e in raised.value.errors] == ["int_parsing", "uuid_parsing"]


def test_unknown_types_are_refused_when_building() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match="cannot convert"):
        converter_for(Opaque)


def test_pydantic_errors_that_are_not_validation_errors_propagate() -> None:
    class Weird:
        @classmethod
        def model_validate(cls, value: Any, **options: Any) -> Any:
            raise LookupError("not a validation error")

    with pytest.raises(LookupError):
        converter_for(Weird)({})


@pytest.mark.parametrize(
    ("annotation", "scalar", "sequence"),
    [
        (int, True, False),
        (Size, True, False),
        (Literal["a"], True, False),
        (int | None, True, False),
        (list[int], False, True),
        (list[int] | None, False, True),
        (list, False, True),
        (list[dict[str, int]], False, False),
        (dict[str, int], False, False),
        (Inner, False, False),
    ],
)
def test_classification(annotation: Any, scalar: bool, sequence: bool) -> None:
    assert is_scalar(annotation) is scalar
    assert is_sequence_of_scalars(annotation) is sequence


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab=&%+;2x ", max_size=30))
def test_the_fast_query_parser_agrees_with_the_standard_library(text: str) -> None:
    try:
        expected = parse_qsl(text, keep_blank_values=True)
    except ValueError:  # pragma: no cover - parse_qsl only raises with strict_parsing
        return
    assert parse_query(text) == expected


@dataclasses.dataclass
class Everything:
    text: str
    count: int
    ratio: float
    flag: bool
    numbers: list[int]
    anything: Any
    inner: Inner


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["n", "label", "x"]), children, max_size=3)
    ),
    max_leaves=4,
)
_FIELDS = ["text", "count", "ratio", "flag", "numbers", "anything", "inner"]


def _outcome(convert: Any, value: Any) -> Any:
    try:
        return ("ok", convert(value))
    except Invalid as invalid:
        return ("invalid", invalid.errors)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*_FIELDS, "extra"]), _JSON_VALUES, max_size=8) | _JSON_VALUES,
    st.fixed_dictionaries({name: _JSON_VALUES for name in _FIELDS}),
)
def test_a_dataclass_converter_fast_path_agrees_with_the_general_one(
    partial: Any, complete: dict[str, Any]
) -> None:
    convert = converter_for(Everything)
    general = convert.__globals__["general"]  # the generated fast path falls back to it
    assert convert is not general
    for value in (partial, complete, {**complete, "count": 3, "text": "t", "inner": {"n": 1}}):
        assert _outcome(convert, value) == _outcome(general, value)


@dataclasses.dataclass(init=False)
class Reordered:
    first: str
    second: int

    def __init__(self, second: int, first: str) -> None:  # not the fields' order
        self.first, self.second = first, second


@dataclasses.dataclass
class KeywordOnly:
    first: str
    _: dataclasses.KW_ONLY
    second: int


@pytest.mark.parametrize("kind", [Everything, Reordered, KeywordOnly])
def test_the_fast_path_passes_each_field_to_its_parameter(kind: Any) -> None:
    # Positional arguments where the class's signature takes the fields in order
    # (cheaper), keywords otherwise: each value must land in its own field either way.
    convert = converter_for(kind)
    assert convert is not convert.__globals__["general"]
    if kind is Everything:
        value = {
            "text": "t", "count": 1, "ratio": 0.5, "flag": True,
            "numbers": [2], "anything": None, "inner": {"n": 3},
        }  # fmt: skip
    else:
        value = {"first": "a", "second": 2}
    made = convert(value)
    assert type(made) is kind
    for name in value:
        if name != "inner":
            assert getattr(made, name) == value[name]


@dataclasses.dataclass
class PostInit:
    first: str
    seen: list[str] = dataclasses.field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.seen.append(self.first)


@dataclasses.dataclass
class NotInInit:
    first: str
    stamp: int = dataclasses.field(init=False, default=7)


@dataclasses.dataclass(frozen=True)
class Frozen:
    first: str


@dataclasses.dataclass(slots=True)
class Slotted:
    first: str


@pytest.mark.parametrize("kind", [PostInit, NotInInit, Frozen, Slotted])
def test_an_instance_made_without_init_is_the_one_init_would_make(kind: Any) -> None:
    # The fast path sets the fields itself only where `__init__` would do nothing more:
    # `__post_init__` still runs, an `init=False` field still gets its default, a frozen
    # instance is still made by its class.
    made = converter_for(kind)({"first": "a"})
    assert made == kind("a")
    assert type(made) is kind
    if kind is PostInit:
        assert made.seen == ["a"]
    if kind is NotInInit:
        assert made.stamp == 7
