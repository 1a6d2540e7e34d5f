"""Constraints (`gt`, `min_length`, `pattern`, ...) read from metadata and compiled into checks.

Two jobs, both done once at declaration:

- `read_metadata(items)` sorts what sits in `Annotated[T, ...]`: `annotated_types`
  objects (`Gt`, `MinLen`, `Interval`, ...), pydantic's `Field(...)`, `Strict`,
  `AllowInfNan`, `StringConstraints` and constrained types (`conint`, ...). What
  maps onto our `Constraints` is merged; what only pydantic can apply (a
  `to_lower`, an `AfterValidator`) is kept apart as *foreign* metadata, for a
  pydantic `TypeAdapter`; anything else is a `TypeError`: never ignored.
- `constrain(kind, convert, constraints)` wraps a converter with the checks that
  apply to `kind`, raising `Invalid` with pydantic v2's exact `type`, `msg` and
  `ctx`, in pydantic's order (one error per value, the first check that fails).
  A constraint that cannot apply to `kind` (`gt` on a `str`) is a `TypeError`.

A parameter without constraints never reaches this module: its converter is
exactly what it was without it, so it costs nothing per request.
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from ._params import NO_CONSTRAINTS, Constraints

Converter = Callable[[Any], Any]

_CONSTRAINT_NAMES = frozenset(f.name for f in dataclasses.fields(Constraints))
#: `FieldInfo` attributes that only document (kept for OpenAPI, no effect on validation).
DOC_ATTRIBUTES = frozenset(
    {"title", "description", "examples", "deprecated", "json_schema_extra", "serialization_alias"}
)


class Invalid(Exception):
    """A value could not be converted; `errors` are pydantic-style dicts with relative `loc`."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def fail(kind: str, msg: str, value: Any, ctx: dict[str, Any] | None = None) -> Any:
    error: dict[str, Any] = {"type": kind, "loc": [], "msg": msg, "input": value}
    if ctx is not None:
        error["ctx"] = ctx
    raise Invalid([error])


@dataclasses.dataclass(slots=True)
class Metadata:
    """What `read_metadata` found in `Annotated` extras."""

    constraints: Constraints = NO_CONSTRAINTS
    #: Metadata only pydantic can apply, in the order given.
    foreign: list[Any] = dataclasses.field(default_factory=list)
    #: Non-constraint attributes set on a `Field(...)`: alias, description, default...
    field_attributes: dict[str, Any] = dataclasses.field(default_factory=dict)


def read_metadata(items: Iterable[Any]) -> Metadata:
    """Sort `Annotated` extras into our constraints, pydantic-only metadata and `Field` attributes.

    Raises:
        TypeError: for an object neither we nor pydantic know how to apply.
    """
    found = Metadata()
    given: dict[str, Any] = {}
    for item in items:
        _read_one(item, given, found)
    if given:
        found.constraints = Constraints(**given)
    return found


def _read_one(item: Any, given: dict[str, Any], found: Metadata) -> None:
    if item is None:  # `conint()` and friends put None where a keyword was not given
        return
    module = type(item).__module__ or ""
    if module.startswith("annotated_types"):
        import annotated_types as at

        simple = {at.Gt: "gt", at.Ge: "ge", at.Lt: "lt", at.Le: "le", at.MultipleOf: "multiple_of"}
        simple.update({at.MinLen: "min_length", at.MaxLen: "max_length"})
        name = simple.get(type(item))
        if name is not None:
            given[name] = getattr(item, name)
        elif isinstance(item, at.GroupedMetadata):  # Interval, Len: a group of the above
            for each in item:
                _read_one(each, given, found)
        else:  # Predicate, Timezone, Unit...: pydantic applies some of them
            found.foreign.append(item)
        return
    if not module.startswith("pydantic"):
        raise TypeError(
            f"{item!r} in Annotated[...] is not understood: use a marker (Query, Body...), "
            "Field(...), annotated_types or pydantic types"
        )
    cls_name = type(item).__name__
    if cls_name == "FieldInfo":
        for key in getattr(item, "_attributes_set", {}):
            if key not in _CONSTRAINT_NAMES:
                found.field_attributes[key] = getattr(item, key)
        for each in item.metadata:
            _read_one(each, given, found)
    elif cls_name in ("Strict", "AllowInfNan"):
        key = "strict" if cls_name == "Strict" else "allow_inf_nan"
        given[key] = getattr(item, key)
    elif cls_name == "_PydanticGeneralMetadata":
        rest = {k: v for k, v in vars(item).items() if k not in _CONSTRAINT_NAMES}
        given.update({k: v for k, v in vars(item).items() if k in _CONSTRAINT_NAMES})
        if rest:
            found.foreign.append(item)
    elif cls_name == "StringConstraints":  # a group: MinLen, MaxLen, general metadata
        for each in item:
            _read_one(each, given, found)
    else:  # validators, discriminators, serializers...: pydantic's own business
        found.foreign.append(item)


def as_pydantic_metadata(constraints: Constraints) -> list[Any]:
    """Our constraints as a pydantic `Field`, to hand to a `TypeAdapter` with foreign metadata."""
    given = constraints.given()
    if not given:
        return []
    from pydantic import Field

    field: Any = Field(**given)
    return [field]


# -- compiling the checks ------------------------------------------------------------------------


def _number_text(value: Any) -> str:
    """A bound as pydantic writes it in a message: `5`, `1.5`, and `1` for `1.0`."""
    if isinstance(value, float) and value.is_integer():
        return ("-" if math.copysign(1.0, value) < 0 else "") + str(abs(int(value)))
    return str(value)


def _jsonable(value: Any) -> Any:
    """A bound as FastAPI puts it in `ctx`: Decimals become int or float."""
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    return value


_SEQUENCE_NAMES = {
    list: "List",
    set: "Set",
    frozenset: "Frozenset",
    tuple: "Tuple",
    dict: "Dictionary",
}


def constrain(kind: Any, convert: Converter, constraints: Constraints) -> Converter:
    """`convert` followed by the checks of `constraints` that apply to `kind`.

    `kind` is the bare type the converter produces (`int`, `str`, `list`...).

    Raises:
        TypeError: if a constraint cannot apply to `kind`.
    """
    given = constraints.given()
    given.pop("strict", None)  # applied by the caller, which picks a strict converter
    if not given:
        return convert
    checks: list[Callable[[Any, Any], None]] = []
    number = kind in (int, float, decimal.Decimal, bool)
    if kind is float and given.get("allow_inf_nan") is False:
        checks.append(_finite)
    given.pop("allow_inf_nan", None)  # for Decimal, the caller picked the converter
    if kind is decimal.Decimal and ("max_digits" in given or "decimal_places" in given):
        checks.append(_digits(given.pop("max_digits", None), given.pop("decimal_places", None)))
    if number:
        checks.extend(_bounds(kind, given))
    elif kind is str:
        checks.extend(_text_checks(given))
    elif kind is bytes:
        checks.extend(_length_checks(given, "bytes_too_short", "bytes_too_long", "Data", "byte"))
    elif kind in _SEQUENCE_NAMES:
        checks.extend(_collection_checks(given, _SEQUENCE_NAMES[kind]))
    if given:
        name = getattr(kind, "__name__", repr(kind))
        raise TypeError(f"constraint(s) {', '.join(given)} cannot apply to {name}")
    if len(checks) == 1:
        (only,) = checks

        def checked(value: Any) -> Any:
            result = convert(value)
            only(result, value)
            return result

        return checked

    def checked_all(value: Any) -> Any:
        result = convert(value)
        for check in checks:
            check(result, value)
        return result

    return checked_all


def _finite(value: float, raw: Any) -> None:
    if not math.isfinite(value):
        fail("finite_number", "Input should be a finite number", raw)


def _bounds(kind: Any, given: dict[str, Any]) -> list[Callable[[Any, Any], None]]:
    """Checks in pydantic's order: multiple_of, le, lt, ge, gt."""
    checks: list[Callable[[Any, Any], None]] = []
    cast: Callable[[Any], Any] = kind if kind is not bool else int
    bounds = {}
    for name in ("multiple_of", "le", "lt", "ge", "gt"):
        if name in given:
            raw_bound = given.pop(name)
            try:
                bounds[name] = (
                    cast(raw_bound)
                    if kind is not decimal.Decimal
                    else decimal.Decimal(str(raw_bound))
                )
            except (TypeError, ValueError, decimal.InvalidOperation):
                raise TypeError(f"{name}={raw_bound!r} must be a number") from None
            if kind is int and bounds[name] != raw_bound:
                raise TypeError(f"{name}={raw_bound!r} must be coercible to an integer")
    if "multiple_of" in bounds:
        step = bounds["multiple_of"]
        if not step:
            raise TypeError("multiple_of must not be 0")
        checks.append(_multiple_of(step, kind is float))
    texts = {
        "le": "less than or equal to",
        "lt": "less than",
        "ge": "greater than or equal to",
        "gt": "greater than",
    }
    types = {
        "le": "less_than_equal",
        "lt": "less_than",
        "ge": "greater_than_equal",
        "gt": "greater_than",
    }
    for name in ("le", "lt", "ge", "gt"):
        if name in bounds:
            checks.append(_bound(name, bounds[name], types[name], texts[name]))
    return checks


def _multiple_of(step: Any, is_float: bool) -> Callable[[Any, Any], None]:
    msg = f"Input should be a multiple of {_number_text(step)}"
    ctx = {"multiple_of": _jsonable(step)}
    if is_float:
        # Floats are inexact (0.3 % 0.1 is 0.0999...): a remainder within a billionth
        # of the step from 0 or from the step itself counts as a multiple, as pydantic does.
        tolerance = abs(step) / 1e9

        def check_float(value: Any, raw: Any) -> None:
            remainder = value % step
            if abs(remainder) > tolerance and abs(remainder - step) > tolerance:
                fail("multiple_of", msg, raw, dict(ctx))

        return check_float

    def check(value: Any, raw: Any) -> None:
        if value % step:
            fail("multiple_of", msg, raw, dict(ctx))

    return check


def _bound(name: str, bound: Any, kind: str, text: str) -> Callable[[Any, Any], None]:
    msg = f"Input should be {text} {_number_text(bound)}"
    ctx = {name: _jsonable(bound)}
    compare: Callable[[Any, Any], bool] = {
        "le": lambda v, b: v <= b,
        "lt": lambda v, b: v < b,
        "ge": lambda v, b: v >= b,
        "gt": lambda v, b: v > b,
    }[name]

    def check(value: Any, raw: Any) -> None:
        try:
            ok = compare(value, bound)
        except decimal.InvalidOperation:  # a NaN Decimal compares to nothing
            ok = False
        if not ok:
            fail(kind, msg, raw, dict(ctx))

    return check


def _digits(max_digits: int | None, places: int | None) -> Callable[[Any, Any], None]:
    def check(value: decimal.Decimal, raw: Any) -> None:
        if not value.is_finite():
            return
        _, digit_tuple, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        # Trailing zeros of the fraction do not count (`1.50` has 2 digits, one place),
        # those of the integer part do (`100` has 3), as pydantic counts them.
        while exponent < 0 and digit_tuple and digit_tuple[-1] == 0:
            digit_tuple = digit_tuple[:-1]
            exponent += 1
        if not digit_tuple:  # a zero: `0.000` has no digit that counts
            exponent = 0
        if exponent >= 0:
            decimals, digits = 0, len(digit_tuple) + exponent
        else:
            decimals = -exponent
            digits = max(len(digit_tuple), decimals)
        if max_digits is not None and digits > max_digits:
            fail(
                "decimal_max_digits",
                f"Decimal input should have no more than {max_digits} "
                f"digit{_s(max_digits)} in total",
                raw,
                {"max_digits": max_digits},
            )
        if places is not None and decimals > places:
            fail(
                "decimal_max_places",
                f"Decimal input should have no more than {places} decimal place{_s(places)}",
                raw,
                {"decimal_places": places},
            )
        if max_digits is not None and places is not None:
            whole = max(max_digits - places, 0)
            if digits - decimals > whole:
                fail(
                    "decimal_whole_digits",
                    f"Decimal input should have no more than {whole} digit{_s(whole)} "
                    "before the decimal point",
                    raw,
                    {"whole_digits": whole},
                )

    return check


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _length_checks(
    given: dict[str, Any], short: str, long: str, noun: str, unit: str
) -> list[Callable[[Any, Any], None]]:
    checks: list[Callable[[Any, Any], None]] = []
    low = given.pop("min_length", None)
    high = given.pop("max_length", None)
    if low is not None:
        low_msg = f"{noun} should have at least {low} {unit}{_s(low)}"

        def too_short(value: Any, raw: Any) -> None:
            if len(value) < low:
                fail(short, low_msg, raw, {"min_length": low})

        checks.append(too_short)
    if high is not None:
        high_msg = f"{noun} should have at most {high} {unit}{_s(high)}"

        def too_long(value: Any, raw: Any) -> None:
            if len(value) > high:
                fail(long, high_msg, raw, {"max_length": high})

        checks.append(too_long)
    return checks


def _text_checks(given: dict[str, Any]) -> list[Callable[[Any, Any], None]]:
    checks = _length_checks(given, "string_too_short", "string_too_long", "String", "character")
    pattern = given.pop("pattern", None)
    if pattern is not None:
        try:
            search = re.compile(pattern).search
        except re.error as error:
            raise TypeError(
                f"pattern {pattern!r} is not a valid regular expression: {error}"
            ) from None
        msg = f"String should match pattern '{pattern}'"

        def matches(value: str, raw: Any) -> None:
            if search(value) is None:
                fail("string_pattern_mismatch", msg, raw, {"pattern": pattern})

        checks.append(matches)
    return checks


def _collection_checks(given: dict[str, Any], noun: str) -> list[Callable[[Any, Any], None]]:
    checks: list[Callable[[Any, Any], None]] = []
    low = given.pop("min_length", None)
    high = given.pop("max_length", None)
    if low is not None:

        def too_short(value: Any, raw: Any) -> None:
            if len(value) < low:
                fail(
                    "too_short",
                    f"{noun} should have at least {low} item{_s(low)} after validation, "
                    f"not {len(value)}",
                    raw,
                    {"field_type": noun, "min_length": low, "actual_length": len(value)},
                )

        checks.append(too_short)
    if high is not None:

        def too_long(value: Any, raw: Any) -> None:
            if len(value) > high:
                fail(
                    "too_long",
                    f"{noun} should have at most {high} item{_s(high)} after validation, "
                    f"not {len(value)}",
                    raw,
                    {"field_type": noun, "max_length": high, "actual_length": len(value)},
                )

        checks.append(too_long)
    return checks
