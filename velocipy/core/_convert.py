"""Converters from wire values to annotated types, built once per parameter at declaration.

`converter_for(annotation)` returns a function that takes a value as it arrives
(a string from the path, query or headers, or a decoded JSON value) and returns
it converted, or raises `Invalid` with a pydantic-style error type and message.
Errors inside containers carry the extra location (list index, field name).

`Annotated[T, ...]` metadata and a marker's keywords become constraints
compiled into the converter (`_constraints.py`). Types we have no converter
for, and metadata only pydantic can apply, get a pydantic `TypeAdapter`,
imported here only when a declaration needs it. Dates, times and durations
also go to pydantic when it is installed, for its exact parsing and messages.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Union

from ._constraints import (
    DOC_ATTRIBUTES,
    Invalid,
    as_pydantic_metadata,
    constrain,
    read_metadata,
)
from ._params import NO_CONSTRAINTS, Constraints
from ._uploads import UploadFile

__all__ = ["Converter", "Invalid", "converter_for", "build_converter"]

Converter = Callable[[Any], Any]


def _fail(kind: str, msg: str, value: Any, loc: tuple[Any, ...] = ()) -> typing.NoReturn:
    raise Invalid([{"type": kind, "loc": list(loc), "msg": msg, "input": value}])


_INT_RE = re.compile(r"[+-]?\d{1,4300}(?:\.0*)?")
_INT_MSG = "Input should be a valid integer"
_FLOAT_MSG = "Input should be a valid number"
_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):  # a body that was not JSON, as pydantic reads it
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            _fail(
                "string_unicode",
                "Input should be a valid string, unable to parse raw data as a unicode string",
                value,
            )
    _fail("string_type", "Input should be a valid string", value)


def _to_int(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip()
        if _INT_RE.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # "3.0": pydantic takes a zero fraction
                return int(text.partition(".")[0])
        _fail(
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
            value,
        )
    if type(value) is int:
        return value
    if isinstance(value, int):
        return int(value)  # a bool, as pydantic's lax mode takes it
    if isinstance(value, bytes):
        return _to_int(value.decode("utf-8", "replace"))
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        _fail(
            "int_from_float",
            "Input should be a valid integer, got a number with a fractional part",
            value,
        )
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
    if isinstance(value, (int, float)):
        return float(value)  # a bool too, as pydantic's lax mode takes it
    if isinstance(value, bytes):
        return _to_float(value.decode("utf-8", "replace"))
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
            _fail("uuid_parsing", "Input should be a valid UUID", value)
    _fail("uuid_type", "UUID input should be a string, bytes or UUID object", value)


def _to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            result = decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            pass
        else:
            if result.is_finite():
                return result
            _fail("finite_number", "Input should be a finite number", value)
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
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, UploadFile) and value.in_memory:
        # A form field asked for as bytes: the form reader kept its file part in memory.
        content: bytes = value.file.getvalue()  # type: ignore[attr-defined]
        return content
    _fail("bytes_type", "Input should be a valid bytes", value)


def _to_upload(value: Any) -> UploadFile:
    if isinstance(value, UploadFile):
        return value
    raise Invalid(
        [
            {
                "type": "value_error",
                "loc": [],
                "msg": f"Value error, Expected UploadFile, received: {type(value)}",
                "input": value,
                "ctx": {"error": {}},
            }
        ]
    )


def _identity(value: Any) -> Any:
    return value


_SCALARS: dict[Any, Converter] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    decimal.Decimal: _to_decimal,
    bytes: _to_bytes,
    UploadFile: _to_upload,
}


def _strict_str(value: Any) -> str:
    if type(value) is str:
        return value
    _fail("string_type", "Input should be a valid string", value)


def _strict_int(value: Any) -> int:
    if type(value) is int:
        return value
    _fail("int_type", "Input should be a valid integer", value)


def _strict_float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    _fail("float_type", "Input should be a valid number", value)


def _strict_bool(value: Any) -> bool:
    if type(value) is bool:
        return value
    _fail("bool_type", "Input should be a valid boolean", value)


#: Converters for `strict=True`: no conversion between types. Other types go to pydantic.
_STRICT: dict[Any, Converter] = {
    str: _strict_str,
    int: _strict_int,
    float: _strict_float,
    bool: _strict_bool,
}


def _to_any_decimal(value: Any) -> decimal.Decimal:
    """A Decimal that may be infinite or NaN (`allow_inf_nan=True`)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            return decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            pass
    _fail("decimal_parsing", "Input should be a valid decimal", value)


_DURATION_RE = re.compile(
    r"(?P<sign>[-+]?)P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_CLOCK_RE = re.compile(
    r"(?P<sign>[-+]?)(?P<hours>\d+):(?P<minutes>\d{2}):(?P<seconds>\d{2}(?:\.\d+)?)"
)


def _to_timedelta(value: Any) -> datetime.timedelta:
    """Seconds as a number, an ISO 8601 duration (`P1DT2H`) or `HH:MM:SS[.f]`."""
    if isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        match = _DURATION_RE.fullmatch(text) or _CLOCK_RE.fullmatch(text)
        if match is not None and text not in ("P", "-P", "+P") and not text.endswith("T"):
            parts = {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
            delta = datetime.timedelta(**parts)
            return -delta if match.group("sign") == "-" else delta
        try:
            return datetime.timedelta(seconds=float(text))
        except ValueError:
            pass
    _fail("time_delta_parsing", "Input should be a valid timedelta", value)


#: Types pydantic parses in many formats, with precise messages: its TypeAdapter when
#: installed, else these (ISO 8601 only, one message per type, no `ctx`).
_RICH: dict[Any, Converter] = {
    uuid.UUID: _to_uuid,
    datetime.datetime: _iso(datetime.datetime, "datetime"),
    datetime.date: _iso(datetime.date, "date"),
    datetime.time: _iso(datetime.time, "time"),
    datetime.timedelta: _to_timedelta,
}


def _rich_converter(kind: Any) -> Converter:
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return _RICH[kind]
    return adapter_converter(kind)


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
    if annotation in _SCALARS or annotation in _RICH or annotation is Any:
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


def converter_for(annotation: Any, constraints: Constraints = NO_CONSTRAINTS) -> Converter:
    """Build the converter for `annotation` checking `constraints`.

    Raises:
        TypeError: for a type we cannot convert to, metadata nobody understands,
            a constraint that does not apply to the type, or pydantic missing
            where it is needed; the message says which.
    """
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        found = read_metadata(extras)
        extra = set(found.field_attributes) - DOC_ATTRIBUTES
        if extra:
            raise TypeError(f"Field({', '.join(sorted(extra))}=...) is not supported here")
        return build_converter(base, constraints.merged(found.constraints), found.foreign)
    return build_converter(annotation, constraints, [])


def build_converter(annotation: Any, constraints: Constraints, foreign: list[Any]) -> Converter:
    """The converter for `annotation` with `constraints`; `foreign` metadata needs pydantic."""
    if foreign or (constraints.strict and strip_optional(annotation) not in _STRICT):
        metadata = [*foreign, *as_pydantic_metadata(constraints)]
        arguments = (annotation, *metadata)
        return adapter_converter(typing.Annotated[arguments])
    members = union_members(annotation)
    if members is not None and constraints is not NO_CONSTRAINTS:
        return _union_converter(members, constraints)
    convert = _plain_converter(annotation)
    if constraints is NO_CONSTRAINTS:
        return convert
    kind = typing.get_origin(annotation) or annotation
    if constraints.strict:
        convert = _STRICT[annotation]
    if kind is decimal.Decimal and constraints.allow_inf_nan:
        convert = _to_any_decimal
    return constrain(kind, convert, constraints)


def strip_optional(annotation: Any) -> Any:
    """`T | None` → `T`; anything else unchanged."""
    members = union_members(annotation)
    if members is not None:
        rest = [m for m in members if m is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _plain_converter(annotation: Any) -> Converter:
    if typing.get_origin(annotation) is typing.Annotated:
        return converter_for(annotation)
    if annotation is Any or annotation is object or annotation is typing.Any:
        return _identity
    scalar = _SCALARS.get(annotation)
    if scalar is not None:
        return scalar
    if annotation in _RICH:
        return _rich_converter(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_converter(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return _literal_converter(typing.get_args(annotation))
    members = union_members(annotation)
    if members is not None:
        return _union_converter(members, NO_CONSTRAINTS)
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
    try:
        import pydantic  # noqa: F401
    except ImportError:
        raise TypeError(
            f"cannot convert request data to {annotation!r} (pydantic could: install pydantic)"
        ) from None
    return adapter_converter(annotation)


def adapter_converter(annotation: Any) -> Converter:
    """A pydantic `TypeAdapter` for `annotation`, its errors turned into `Invalid`."""
    try:
        from pydantic import TypeAdapter, ValidationError
    except ImportError:
        raise TypeError(
            f"{annotation!r} needs pydantic to be validated: install pydantic"
        ) from None
    try:
        validate = TypeAdapter(annotation).validate_python
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise TypeError(f"cannot convert request data to {annotation!r}: {first_line}") from None

    def convert(value: Any) -> Any:
        try:
            return validate(value, from_attributes=True)
        except ValidationError as error:
            raise Invalid(pydantic_errors(error)) from None

    return convert


def pydantic_errors(error: Any) -> list[dict[str, Any]]:
    """A pydantic `ValidationError`'s errors as FastAPI sends them (JSON-able `ctx`)."""
    out: list[dict[str, Any]] = []
    for each in error.errors(include_url=False):
        item = {
            "type": each["type"],
            "loc": list(each["loc"]),
            "msg": each["msg"],
            "input": _jsonable(each.get("input")),
        }
        if "ctx" in each:
            item["ctx"] = {key: _jsonable(value) for key, value in each["ctx"].items()}
        out.append(item)
    return out


def _jsonable(value: Any) -> Any:
    """What FastAPI's encoder makes of a value in an error: exceptions are `{}`."""
    if isinstance(value, BaseException):
        return {}
    if isinstance(value, decimal.Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _none_converter(value: Any) -> None:
    if value is None:
        return None
    _fail("none_required", "Input should be None", value)


def _choices(values: list[Any]) -> str:
    """pydantic's list of allowed values: `'a'`, `'a' or 'b'`, `'a', 'b' or 'c'`."""
    texts = [repr(v) for v in values]
    return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"


def _fail_expected(kind: str, expected: str, value: Any) -> typing.NoReturn:
    raise Invalid(
        [
            {
                "type": kind,
                "loc": [],
                "msg": f"Input should be {expected}",
                "input": value,
                "ctx": {"expected": expected},
            }
        ]
    )


def _enum_converter(kind: type[enum.Enum]) -> Converter:
    by_value = {member.value: member for member in kind}
    by_text = {str(member.value): member for member in kind}
    expected = _choices(list(by_value))

    def convert(value: Any) -> enum.Enum:
        try:
            if value in by_value:
                return by_value[value]
        except TypeError:  # unhashable JSON value
            pass
        if isinstance(value, str) and value in by_text:
            return by_text[value]
        _fail_expected("enum", expected, value)

    return convert


def _literal_converter(choices: tuple[Any, ...]) -> Converter:
    by_text = {str(c): c for c in choices}
    expected = _choices(list(choices))

    def convert(value: Any) -> Any:
        for choice in choices:
            if value == choice and type(value) is type(choice):
                return choice
        if isinstance(value, str) and value in by_text:
            return by_text[value]
        _fail_expected("literal_error", expected, value)

    return convert


def _union_converter(members: tuple[Any, ...], constraints: Constraints) -> Converter:
    optional = type(None) in members
    converters = [converter_for(m, constraints) for m in members if m is not type(None)]
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

        size = len(fixed)

        def convert_fixed(value: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                _fail("tuple_type", "Input should be a valid tuple", value)
            if len(value) > size:
                raise Invalid(
                    [
                        {
                            "type": "too_long",
                            "loc": [],
                            "msg": f"Tuple should have at most {size} item{_plural(size)} "
                            f"after validation, not {len(value)}",
                            "input": value,
                            "ctx": {
                                "field_type": "Tuple",
                                "max_length": size,
                                "actual_length": len(value),
                            },
                        }
                    ]
                )
            missing = [
                {"type": "missing", "loc": [index], "msg": "Field required", "input": value}
                for index in range(len(value), size)
            ]
            try:
                items = _convert_items(value, fixed[: len(value)])
            except Invalid as invalid:
                raise Invalid(invalid.errors + missing) from None
            if missing:
                raise Invalid(missing)
            return tuple(items)

        return convert_fixed

    item = converter_for(args[0]) if args else _identity
    build: Callable[[list[Any]], Any] = container if container is not list else list

    kind, noun = _CONTAINER_ERRORS[container]

    def convert(value: Any) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)):
            _fail(kind, f"Input should be a valid {noun}", value)
        return build(_convert_items(value, [item] * len(value)))

    return convert


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


_CONTAINER_ERRORS = {
    list: ("list_type", "list"),
    set: ("set_type", "set"),
    frozenset: ("frozen_set_type", "frozenset"),
    tuple: ("tuple_type", "tuple"),
}


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
            raise Invalid(
                [
                    {
                        "type": "dataclass_type",
                        "loc": [],
                        "msg": f"Input should be a dictionary or an instance of {kind.__name__}",
                        "input": value,
                        "ctx": {"class_name": kind.__name__},
                    }
                ]
            )
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

    The instance is made with positional arguments when the class's own signature
    takes the fields in that order: a call with keywords costs a dict more in
    `type.__call__`, about 1,200 instructions a request.
    """
    if not fields or not all(required for _, _, required in fields):
        return general
    names = [name for name, _, _ in fields]
    try:
        parameters = inspect.signature(kind).parameters.values()
    except (TypeError, ValueError):  # no signature to read: keywords are always right
        positional = False
    else:
        positional = names == [
            p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
    bare = _builds_bare(kind, names)
    namespace: dict[str, Any] = {
        "kind": kind,
        "general": general,
        "Invalid": Invalid,
        "new": object.__new__,
    }
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
        arguments.append(f"v{index}" if positional else f"{name}=v{index}")
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
            *(
                [
                    "            made = new(kind)",
                    *(f"            made.{name} = v{index}" for index, name in enumerate(names)),
                    "            return made",
                ]
                if bare
                else [f"            return kind({', '.join(arguments)})"]
            ),
            "    return general(value)",
        ]
    )
    exec(source, namespace)  # noqa: S102 - field names are identifiers; values come from here
    fast: Converter = namespace["convert"]
    return fast


_OBJECT_NEW: Any = object.__new__


def _builds_bare(kind: type[Any], names: list[str]) -> bool:
    """Whether an instance of dataclass `kind` with every field in `names` can be made by
    `object.__new__` and setting the fields, exactly as its `__init__` would.

    True only when that `__init__` is the one `dataclasses` wrote (a class's own is left
    alone), it sets nothing else (every field is in `names`: no `init=False` field with
    a default, no `InitVar`), nothing runs after it (`__post_init__`), and the fields can
    be set (not frozen). Calling the class enters the interpreter once more from C
    (`type.__call__`, then `__init__`): more time than its instructions say.
    """
    params = getattr(kind, "__dataclass_params__", None)
    init = kind.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    return (
        params is not None
        and not params.frozen
        and code is not None
        and code.co_filename == "<string>"  # where `dataclasses` compiles what it writes
        and getattr(init, "__qualname__", "") == f"{kind.__qualname__}.__init__"
        and not hasattr(kind, "__post_init__")
        and [f.name for f in dataclasses.fields(kind)] == names
        and not any(
            isinstance(v, dataclasses.InitVar)
            for v in getattr(kind, "__annotations__", {}).values()
        )
        and type(kind) is type
        and kind.__new__ is _OBJECT_NEW
    )


def _pydantic_converter(model: Any) -> Converter:
    validate = model.model_validate
    from pydantic import ValidationError

    def convert(value: Any) -> Any:
        try:
            # `from_attributes` as FastAPI validates: a non-dict is read by attributes,
            # and refused as `model_attributes_type`.
            return validate(value, from_attributes=True)
        except ValidationError as error:
            raise Invalid(pydantic_errors(error)) from None

    return convert
