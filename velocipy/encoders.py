"""`jsonable_encoder`: turn any value a handler deals in into plain JSON-compatible data.

The same contract as FastAPI's function of that name: pydantic models,
dataclasses, enums, dates and times, `Decimal`, `UUID`, paths, sets, tuples and
generators come out as dicts, lists, strings and numbers that `json.dumps`
accepts. Handy before storing a model in a JSON column or a fake database.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import ipaddress
import re
import types
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

IncEx = set[int] | set[str] | dict[int, Any] | dict[str, Any] | None


def _decimal(value: decimal.Decimal) -> int | float:
    # As FastAPI: a whole Decimal becomes an int, any other a float.
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


_BY_TYPE: dict[type[Any], Callable[[Any], Any]] = {
    bytes: lambda value: value.decode(),
    datetime.datetime: lambda value: value.isoformat(),
    datetime.date: lambda value: value.isoformat(),
    datetime.time: lambda value: value.isoformat(),
    datetime.timedelta: lambda value: value.total_seconds(),
    decimal.Decimal: _decimal,
    uuid.UUID: str,
    frozenset: list,
    set: list,
    deque: list,
    types.GeneratorType: list,
    ipaddress.IPv4Address: str,
    ipaddress.IPv6Address: str,
    ipaddress.IPv4Interface: str,
    ipaddress.IPv6Interface: str,
    ipaddress.IPv4Network: str,
    ipaddress.IPv6Network: str,
    re.Pattern: lambda value: value.pattern,
}


def jsonable_encoder(
    obj: Any,
    include: IncEx = None,
    exclude: IncEx = None,
    by_alias: bool = True,
    exclude_unset: bool = False,
    exclude_defaults: bool = False,
    exclude_none: bool = False,
    custom_encoder: dict[Any, Callable[[Any], Any]] | None = None,
    sqlalchemy_safe: bool = True,
) -> Any:
    """`obj` as data `json.dumps` accepts: dicts, lists, strings, numbers, booleans, None.

    `include`/`exclude` pick the keys of a model or dict at the top level;
    `exclude_unset`/`_defaults`/`_none` and `by_alias` apply to pydantic models
    (and `exclude_none` to dicts); `custom_encoder` maps a type to a function.
    """
    encoders = custom_encoder or {}
    if encoders:
        if type(obj) in encoders:
            return encoders[type(obj)](obj)
        for kind, encode in encoders.items():
            if isinstance(kind, type) and isinstance(obj, kind):
                return encode(obj)

    def again(value: Any) -> Any:
        return jsonable_encoder(
            value,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
            custom_encoder=custom_encoder,
            sqlalchemy_safe=sqlalchemy_safe,
        )

    if include is not None and not isinstance(include, (set, dict)):
        include = set(include)
    if exclude is not None and not isinstance(exclude, (set, dict)):
        exclude = set(exclude)
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump) and not isinstance(obj, type):  # a pydantic v2 model
        data = model_dump(
            mode="json",
            include=include,
            exclude=exclude,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_none=exclude_none,
            exclude_defaults=exclude_defaults,
        )
        return again(data)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable_encoder(
            dataclasses.asdict(obj),
            include=include,
            exclude=exclude,
            by_alias=by_alias,
            exclude_unset=exclude_unset,
            exclude_defaults=exclude_defaults,
            exclude_none=exclude_none,
            custom_encoder=custom_encoder,
            sqlalchemy_safe=sqlalchemy_safe,
        )
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (str, int, float, type(None))):
        return obj
    if isinstance(obj, Mapping):
        keys = set(obj.keys())
        if include is not None:
            keys &= set(include)
        if exclude is not None:
            keys -= set(exclude)
        encoded = {}
        for key, value in obj.items():
            if key not in keys:
                continue
            if sqlalchemy_safe and isinstance(key, str) and key.startswith("_sa"):
                continue
            if exclude_none and value is None:
                continue
            encoded[again(key)] = again(value)
        return encoded
    if isinstance(obj, (list, set, frozenset, tuple, deque, types.GeneratorType)):
        return [again(item) for item in obj]
    converter = _BY_TYPE.get(type(obj))
    if converter is None:
        for kind, candidate in _BY_TYPE.items():
            if isinstance(obj, kind):
                converter = candidate
                break
    if converter is not None:
        return again(converter(obj))
    try:
        data = dict(obj)
    except Exception as first:
        try:
            data = vars(obj)
        except Exception as second:
            raise ValueError(f"cannot encode {obj!r} as JSON: {first}; {second}") from None
    return again(data)
