"""Parameter models: one pydantic model filled from several query, header or cookie values.

`filters: Annotated[FilterParams, Query()]` reads each field of `FilterParams`
from the query string (a `list[...]` field collects repeated keys), then
validates the model as a whole, as FastAPI does. Built once at declaration:
per request, `gather(source)` makes the dict and `convert(dict)` validates it,
its errors located at `["query", field]` (`_exchange._location`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._constraints import Invalid
from ._convert import Converter, is_sequence_of_scalars


def _field_key(name: str, info: Any) -> str:
    """The key pydantic validates a field under: its validation alias, alias or name."""
    key = info.validation_alias if isinstance(info.validation_alias, str) else None
    return str(key or info.alias or name)


def wire_names(model: Any, source: str, *, convert_underscores: bool = True) -> dict[str, str]:
    """Each field of `model` → its name on the wire as declared (headers: `x_token` → `x-token`)."""
    names = {}
    for name, info in model.model_fields.items():
        key = _field_key(name, info)
        if source == "header" and convert_underscores and key == name:
            key = name.replace("_", "-")
        names[name] = key
    return names


def model_gatherer(
    model: Any, source: str, *, convert_underscores: bool = True
) -> tuple[Callable[[Any], Any], Converter]:
    """`(gather, convert)` for `model` read from `source` ("query", "header" or "cookie").

    `gather` takes the source's mapping (`QueryParams`, `Headers`, the cookie
    dict); values the model has no field for are passed too, so a model with
    `extra="forbid"` refuses them, as FastAPI does (for headers that means every
    request: `Host` and `User-Agent` are headers too).
    """
    from pydantic import ValidationError

    from ._convert import pydantic_errors

    fields: list[tuple[str, str, bool]] = []  # (key in the model, name on the wire, many)
    for name, wire in wire_names(model, source, convert_underscores=convert_underscores).items():
        info = model.model_fields[name]
        key = _field_key(name, info)
        many = source != "cookie" and is_sequence_of_scalars(info.annotation)
        fields.append((key, wire.lower() if source == "header" else wire, many))
    to_wire = {key: wire for key, wire, _ in fields if key != wire}
    known = {wire for _, wire, _ in fields}

    def gather(values: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, wire, many in fields:
            if many:
                items = values.getlist(wire)
                if items:
                    found[key] = items
            else:
                value = values.get(wire)
                if value is not None:
                    found[key] = value
        for wire in values:
            if wire not in known:
                found[wire] = values[wire]
        return found

    validate = model.model_validate

    def convert(value: Any) -> Any:
        try:
            return validate(value)
        except ValidationError as error:
            errors = pydantic_errors(error)
            for each in errors:
                loc = each["loc"]
                if loc and loc[0] in to_wire:
                    loc[0] = to_wire[loc[0]]
            raise Invalid(errors) from None

    return gather, convert
