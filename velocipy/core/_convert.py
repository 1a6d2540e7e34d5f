"""Converters from wire values to annotated types, built once per parameter at declaration.

`converter_for(annotation)` returns a function that takes a value as it arrives
(a string from the path, query or headers, or a decoded JSON value) and returns
it converted, or raises `Invalid` with a pydantic-style error type and message.
Errors inside containers carry the extra location (list index, field name).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Union

Converter = Callable[[Any], Any]


class Invalid(Exception):
    """A value could not be converted; `errors` are pydantic-style dicts with relative `loc`."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _fail(kind: str, msg: str, value: Any, loc: tuple[Any, ...] = ()) -> typing.NoReturn:
    raise Invalid([{"type": kind, "loc": list(loc), "msg": msg, "input": value}])


_INT_RE = re.compile(r"[+-]?\d{1,4300}")
_INT_MSG = "Input should be a valid integer"
_FLOAT_MSG = "Input should be a valid number"
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    _fail("string_type", "Input should be a valid string", value)


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            return int(text)
        _fail(
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            value,
        )
    if isinstance(value, bool):
        _fail("int_type", "Input should be a valid integer", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    _fail("int_type", "Input should be a valid integer", value)


def _to_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            _fail(
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
                value,
            )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    _fail("float_type", "Input should be a valid number", value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    elif isinstance(value, int) and value in (0, 1):
        return bool(value)
    _fail("bool_parsing", "Input should be a valid boolean, unable to interpret input", value)


def _to_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    _fail("uuid_parsing", "Input should be a valid UUID", value)


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            result = decimal.Decimal(str(value))
            if result.is_finite():
                return result
        except decimal.InvalidOperation:
            pass
    _fail("decimal_parsing", "Input should be a valid decimal", value)


def _iso(kind: type[Any], name: str) -> Converter:
    def convert(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return kind.fromisoformat(value)
            except ValueError:
                pass
        _fail(f"{name}_parsing", f"Input should be a valid {name}", value)

    return convert


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    _fail("bytes_type", "Input should be a valid bytes", value)


def _identity(value: Any) -> Any:
    return value


_SCALARS: dict[Any, Converter] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    uuid.UUID: _to_uuid,
    decimal.Decimal: _to_decimal,
    datetime.datetime: _iso(datetime.datetime, "datetime"),
    datetime.date: _iso(datetime.date, "date"),
    datetime.time: _iso(datetime.time, "time"),
    bytes: _to_bytes,
}


def strip_annotated(annotation: Any) -> Any:
    """`Annotated[T, ...]` → `T`; anything else unchanged."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def union_members(annotation: Any) -> tuple[Any, ...] | None:
    """The members of `A | B` or `Union[A, B]`, else None."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return None


def is_scalar(annotation: Any) -> bool:
    """Whether values of this type travel as one string (query, path, header, cookie)."""
    annotation = strip_annotated(annotation)
    if annotation in _SCALARS or annotation is Any:
        return True
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return True
    members = union_members(annotation)
    if members is not None:
        return all(m is type(None) or is_scalar(m) for m in members)
    return False


def is_sequence_of_scalars(annotation: Any) -> bool:
    """`list[int]`, `set[str]`, `tuple[str, ...]` and the like (optionally `| None`)."""
    annotation = strip_annotated(annotation)
    members = union_members(annotation)
    if members is not None:
        rest = [m for m in members if m is not type(None)]
        return len(rest) == 1 and is_sequence_of_scalars(rest[0])
    origin = typing.get_origin(annotation)
    if origin in (list, set, frozenset, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return all(is_scalar(a) for a in args) if args else True
    return annotation in (list, set, frozenset, tuple)


def is_pydantic_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and callable(getattr(annotation, "model_validate", None))


def converter_for(annotation: Any) -> Converter:
    """Build the converter for `annotation`; raise TypeError for a type we cannot convert to."""
    annotation = strip_annotated(annotation)
    if annotation is Any or annotation is object or annotation is typing.Any:
        return _identity
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return scalar
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_converter(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return _literal_converter(typing.get_args(annotation))
    members = union_members(annotation)
    if members is not None:
        return _union_converter(members)
    if origin in (list, set, frozenset, tuple) or annotation in (list, set, frozenset, tuple):
        return _sequence_converter(annotation, origin or annotation)
    if origin is dict or annotation is dict:
        return _dict_converter(annotation)
    if is_pydantic_model(annotation):
        return _pydantic_converter(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _dataclass_converter(annotation)
    if annotation is type(None):
        return _none_converter
    raise TypeError(f"cannot convert request data to {annotation!r}")


def _none_converter(value: Any) -> None:
    if value is None:
        return None
    _fail("none_required", "Input should be None", value)


def _enum_converter(kind: type[enum.Enum]) -> Converter:
    by_value = {member.value: member for member in kind}
    by_text = {str(member.value): member for member in kind}
    expected = ", ".join(repr(v) for v in by_value)

    def convert(value: Any) -> enum.Enum:
        try:
            if value in by_value:
                return by_value[value]
        except TypeError:  # unhashable JSON value
            pass
        if isinstance(value, str) and value in by_text:
            return by_text[value]
        _fail("enum", f"Input should be {expected}", value)

    return convert


def _literal_converter(choices: tuple[Any, ...]) -> Converter:
    by_text = {str(c): c for c in choices}
    expected = ", ".join(repr(c) for c in choices)

    def convert(value: Any) -> Any:
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
        if isinstance(value, str) and value in by_text:
            return by_text[value]
        _fail("literal_error", f"Input should be {expected}", value)

    return convert


def _union_converter(members: tuple[Any, ...]) -> Converter:
    optional = type(None) in members
    converters = [converter_for(m) for m in members if m is not type(None)]
    # A value already of a member's exact scalar type (`str` for `str | None`) is what
    # that member's converter would return, if no earlier member took it first.
    exact = _EXACT.get(converters[0]) if converters else None

    def convert(value: Any) -> Any:
        if value is None and optional:
            return None
        if type(value) is exact:
            return value
        errors: list[dict[str, Any]] = []
        for each in converters:
            try:
                return each(value)
            except Invalid as invalid:
                errors.extend(invalid.errors)
        raise Invalid(errors[:1] if len(converters) == 1 else errors)

    return convert


def _sequence_converter(annotation: Any, container: Any) -> Converter:
    args = typing.get_args(annotation)
    if container is tuple and args and args[-1] is not Ellipsis:
        fixed = [converter_for(a) for a in args]

        def convert_fixed(value: Any) -> Any:
            if not isinstance(value, (list, tuple)) or len(value) != len(fixed):
                _fail("tuple_type", f"Input should be a valid tuple of {len(fixed)} items", value)
            return tuple(_convert_items(value, fixed))

        return convert_fixed

    item = converter_for(args[0]) if args else _identity
    build: Callable[[list[Any]], Any] = container if container is not list else list

    def convert(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            _fail("list_type", "Input should be a valid list", value)
        return build(_convert_items(value, [item] * len(value)))

    return convert


def _convert_items(values: Any, converters: list[Converter]) -> list[Any]:
    out: list[Any] = []
    errors: list[dict[str, Any]] = []
    for index, (value, convert) in enumerate(zip(values, converters, strict=True)):
        try:
            out.append(convert(value))
        except Invalid as invalid:
            errors.extend(_prefixed(invalid.errors, index))
    if errors:
        raise Invalid(errors)
    return out


def _prefixed(errors: list[dict[str, Any]], *prefix: Any) -> list[dict[str, Any]]:
    return [{**e, "loc": [*prefix, *e["loc"]]} for e in errors]


def _dict_converter(annotation: Any) -> Converter:
    args = typing.get_args(annotation)
    key = converter_for(args[0]) if args else _identity
    item = converter_for(args[1]) if len(args) > 1 else _identity

    def convert(value: Any) -> dict[Any, Any]:
        if not isinstance(value, dict):
            _fail("dict_type", "Input should be a valid dictionary", value)
        if key is _identity and item is _identity:
            return value
        out: dict[Any, Any] = {}
        errors: list[dict[str, Any]] = []
        for k, v in value.items():
            try:
                out[key(k)] = item(v)
            except Invalid as invalid:
                errors.extend(_prefixed(invalid.errors, k))
        if errors:
            raise Invalid(errors)
        return out

    return convert


def _dataclass_converter(kind: type[Any]) -> Converter:
    hints = typing.get_type_hints(kind, include_extras=True)
    fields: list[tuple[str, Converter, bool]] = []
    for f in dataclasses.fields(kind):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append((f.name, converter_for(hints.get(f.name, Any)), required))

    def convert(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        if not isinstance(value, dict):
            _fail("dataclass_type", f"Input should be an object ({kind.__name__})", value)
        kwargs: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for name, each, required in fields:
            if name not in value:
                if required:
                    errors.append(
                        {"type": "missing", "loc": [name], "msg": "Field required", "input": value}
                    )
                continue
            try:
                kwargs[name] = each(value[name])
            except Invalid as invalid:
                errors.extend(_prefixed(invalid.errors, name))
        if errors:
            raise Invalid(errors)
        return kind(**kwargs)

    return _dataclass_fast_path(kind, fields, convert)


#: Field types whose converter returns a value of exactly that type unchanged: checked inline.
_EXACT: dict[Converter, type[Any]] = {_to_str: str, _to_int: int, _to_float: float, _to_bool: bool}


def _dataclass_fast_path(
    kind: type[Any], fields: list[tuple[str, Converter, bool]], general: Converter
) -> Converter:
    """A converter specialised to one dataclass, for its common input: a dict with every field.

    Generated once per dataclass (as `dataclasses` does for `__init__`): it reads
    each field by name, checks str/int/float/bool values by exact type inline and
    calls the other fields' converters. Anything else (a missing field, an
    optional one, a value that needs converting or is invalid, a non-dict) goes
    to `general`, the loop above, so results and errors are exactly its own.
    """
    if not fields or not all(required for _, _, required in fields):
        return general
    namespace: dict[str, Any] = {"kind": kind, "general": general, "Invalid": Invalid}
    reads, checks, calls, arguments = [], [], [], []
    for index, (name, each, _) in enumerate(fields):
        reads.append(f"            v{index} = value[{name!r}]")
        exact = _EXACT.get(each)
        if exact is not None:
            namespace[f"t{index}"] = exact
            checks.append(f"type(v{index}) is t{index}")
        elif each is not _identity:
            namespace[f"c{index}"] = each
            calls.append(f"                v{index} = c{index}(v{index})")
        arguments.append(f"{name}=v{index}")
    test = " and ".join(checks) or "True"
    converted = "\n".join(calls) if calls else "                pass"
    source = "\n".join(
        [
            "def convert(value):",
            "    if type(value) is dict:",
            "        try:",
            *reads,
            "        except KeyError:",
            "            return general(value)",
            f"        if {test}:",
            "            try:",
            converted,
            "            except Invalid:",
            "                return general(value)",
            f"            return kind({', '.join(arguments)})",
            "    return general(value)",
        ]
    )
    exec(source, namespace)  # noqa: S102 - field names are identifiers; values come from here
    fast: Converter = namespace["convert"]
    return fast


def _pydantic_converter(model: Any) -> Converter:
    def convert(value: Any) -> Any:
        try:
            return model.model_validate(value)
        except Exception as error:
            errors = getattr(error, "errors", None)
            if not callable(errors):
                raise
            raise Invalid(
                [
                    {
                        "type": e.get("type", "value_error"),
                        "loc": list(e.get("loc", ())),
                        "msg": e.get("msg", str(error)),
                        "input": e.get("input"),
                    }
                    for e in errors()
                ]
            ) from None

    return convert
