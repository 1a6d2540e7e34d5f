"""Constraints compiled by our converters answer exactly as pydantic v2 does.

Differential: each case is validated by our converter and by a pydantic
`TypeAdapter` of the same annotation; the value or the errors (`type`, `loc`,
`msg`, `input`, `ctx`) must be equal. pydantic is the reference FastAPI uses.
"""

from __future__ import annotations

import decimal
from typing import Annotated, Any

import annotated_types as at
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from velocipy.core._convert import Invalid, converter_for, pydantic_errors


def ours(annotation: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", converter_for(annotation)(value)
    except Invalid as invalid:
        # Inputs as they go on the wire (bytes are written as text either way).
        return "errors", [
            {**e, "input": e["input"].decode() if isinstance(e["input"], bytes) else e["input"]}
            for e in invalid.errors
        ]


def theirs(annotation: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", TypeAdapter(annotation).validate_python(value)
    except ValidationError as error:
        return "errors", pydantic_errors(error)


def same(annotation: Any, value: Any) -> None:
    got, expected = ours(annotation, value), theirs(annotation, value)
    if got[0] == "ok" and expected[0] == "ok" and isinstance(got[1], float):
        assert got[1] == pytest.approx(expected[1], nan_ok=True)
        return
    assert got == expected, f"{annotation} with {value!r}"


CASES: list[tuple[Any, list[Any]]] = [
    (Annotated[int, Field(gt=5)], ["5", "6", 5, 6, "x", 5.0]),
    (Annotated[int, Field(ge=5, le=10)], ["4", "5", "10", "11"]),
    (Annotated[int, Field(lt=0)], ["0", "-1"]),
    (Annotated[int, Field(multiple_of=3)], ["4", "9", 0]),
    (Annotated[int, Field(gt=10, lt=0, ge=11, le=-1, multiple_of=7)], [5, 14, -7]),
    (Annotated[float, Field(gt=1.5)], ["1", "1.5", "2", 1]),
    (Annotated[float, Field(gt=1)], ["1", "1.0", "1.1"]),
    (Annotated[float, Field(multiple_of=0.5)], ["0.3", "1.5", 2.0]),
    (Annotated[float, Field(multiple_of=0.1)], [0.3, 0.35]),
    (Annotated[float, Field(allow_inf_nan=False)], ["inf", "-inf", "nan", "1"]),
    (Annotated[float, Field(allow_inf_nan=False, gt=0)], ["inf", "-1"]),
    (Annotated[decimal.Decimal, Field(gt=1)], ["1", "1.5"]),
    (Annotated[decimal.Decimal, Field(gt=decimal.Decimal("1.5"))], ["1", "2"]),
    (Annotated[decimal.Decimal, Field(multiple_of=decimal.Decimal("0.1"))], ["0.35", "0.3"]),
    (Annotated[decimal.Decimal, Field(max_digits=4, decimal_places=2)], ["123.456", "12345"]),
    (
        Annotated[decimal.Decimal, Field(max_digits=4, decimal_places=2)],
        ["1.234", "123.4", "12.34"],
    ),
    (Annotated[decimal.Decimal, Field(max_digits=3)], ["0.0001", "100", "1000", "1.00"]),
    (Annotated[decimal.Decimal, Field(decimal_places=1)], ["1.25", "1.20", "10"]),
    (decimal.Decimal, ["inf", "nan", "x", "1.5"]),
    (Annotated[decimal.Decimal, Field(allow_inf_nan=True)], ["inf", "1"]),
    (Annotated[str, Field(min_length=2)], ["a", "ab", ""]),
    (Annotated[str, Field(max_length=1)], ["ab", "a"]),
    (Annotated[str, Field(min_length=3, max_length=1, pattern="x")], ["ab"]),
    (Annotated[str, Field(max_length=1, pattern="x")], ["ab"]),
    (Annotated[str, Field(pattern=r"^\d+$")], ["a", "12"]),
    (Annotated[str, Field(pattern="b")], ["abc", "xyz"]),
    (Annotated[bytes, Field(min_length=2)], [b"a", "a", b"ab"]),
    (Annotated[bytes, Field(max_length=1)], [b"ab", "ab"]),
    (Annotated[list[int], Field(min_length=1)], [[], ["1"], "x"]),
    (Annotated[list[int], Field(max_length=1)], [["1", "2"]]),
    (Annotated[set[int], Field(min_length=2)], [["1"], ["1", "1"], ["1", "2"]]),
    (Annotated[frozenset[int], Field(min_length=2)], [["1"]]),
    (Annotated[tuple[int, ...], Field(min_length=2)], [["1"]]),
    (Annotated[int, Field(strict=True)], ["1", 1, True, 1.0]),
    (Annotated[float, Field(strict=True)], ["1", 1, 1.5]),
    (Annotated[bool, Field(strict=True)], ["1", True]),
    (Annotated[str, Field(strict=True)], [1, "a"]),
    (Annotated[int | None, Field(gt=5)], [None, "5", "6"]),
    (Annotated[int, at.Gt(3)], ["1", "4"]),
    (Annotated[int, at.Interval(ge=1, lt=3)], ["0", "3", "2"]),
    (Annotated[str, at.Len(2, 3)], ["a", "abcd", "ab"]),
    (Annotated[list[int], at.MinLen(1)], [[]]),
    (Annotated[int, at.MultipleOf(2)], ["3"]),
    (list[Annotated[int, at.Gt(0)]], [["1", "0", "-1"]]),
    (tuple[int, str], [["1"], ["1", 2], ["1", "a", "b"], "x"]),
    (int, ["1.0", "1.5", 1.5, "x", True]),
]


@pytest.mark.parametrize(("annotation", "values"), CASES)
def test_same_answer_as_pydantic(annotation: Any, values: list[Any]) -> None:
    for value in values:
        same(annotation, value)


BOUNDS = st.one_of(
    st.integers(-50, 50), st.floats(-50, 50, allow_nan=False).map(lambda f: round(f, 2))
)


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from([int, float]),
    name=st.sampled_from(["gt", "ge", "lt", "le"]),
    bound=BOUNDS,
    value=st.one_of(st.integers(-60, 60), st.floats(-60, 60, allow_nan=False)).map(str),
)
def test_bounds_agree_with_pydantic(kind: Any, name: str, bound: Any, value: str) -> None:
    if kind is int and not float(bound).is_integer():
        return  # pydantic refuses a fractional bound on an int at declaration, as we do
    same(Annotated[kind, Field(**{name: bound})], value)


@settings(max_examples=150, deadline=None)
@given(
    low=st.none() | st.integers(0, 5),
    high=st.none() | st.integers(0, 5),
    text=st.text(max_size=7),
)
def test_string_lengths_agree_with_pydantic(low: Any, high: Any, text: str) -> None:
    same(Annotated[str, Field(min_length=low, max_length=high)], text)


@settings(max_examples=150, deadline=None)
@given(
    digits=st.none() | st.integers(1, 6),
    places=st.none() | st.integers(0, 4),
    value=st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-9999, max_value=9999
    ),
)
def test_decimal_digits_agree_with_pydantic(
    digits: Any, places: Any, value: decimal.Decimal
) -> None:
    same(Annotated[decimal.Decimal, Field(max_digits=digits, decimal_places=places)], str(value))


def test_a_bound_that_does_not_fit_the_type_is_refused() -> None:
    with pytest.raises(TypeError, match="coercible to an integer"):
        converter_for(Annotated[int, Field(gt=5.5)])
    with pytest.raises(TypeError, match="cannot apply to bool"):
        converter_for(Annotated[bool, Field(min_length=1)])
