"""Response models: compiled once per route into the serializer its return values go through.

A route's response model is `response_model=` when given, else its handler's
return annotation. The model is what FastAPI users rely on to keep fields off
the wire: a `UserInDB` returned where `UserOut` is declared leaves as a
`UserOut`, its password never serialised. A value that does not fit the model
is a `ResponseValidationError` (a logged 500), never sent as it is.

When is a return annotation a response model? FastAPI validates every one
(`-> dict[str, str]` included). Here an annotation is used when it can change
what is sent: when it names a class with fields (a pydantic model, a dataclass,
a `TypedDict`) anywhere inside it. An annotation made only of built-in types
(`dict[str, Any]`, `list[int]`, `str`) is trusted as documentation and costs
nothing per request; pass it as `response_model=` to have it checked. This is
the one deliberate difference, listed in the guide.

Serialising goes through pydantic's `TypeAdapter`, built here at declaration
(pydantic is imported only when a route has a response model); per request it
is one `validate_python` and one `dump_json` (or `dump_python` for a custom
response class), as FastAPI does.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from ._convert import strip_annotated
from ._errors import DeclarationError, ResponseValidationError
from ._responses import Response

#: The `response_model_*` options, with FastAPI's defaults.
SERIALIZE_DEFAULTS: dict[str, Any] = {
    "include": None,
    "exclude": None,
    "by_alias": True,
    "exclude_unset": False,
    "exclude_defaults": False,
    "exclude_none": False,
}


def is_response_class(annotation: Any) -> bool:
    """Whether `annotation` is a `Response` class (never a response model)."""
    return isinstance(annotation, type) and issubclass(annotation, Response)


def _has_fields(annotation: Any) -> bool:
    """Whether `annotation` is, or contains, a class whose fields a model would filter."""
    annotation = strip_annotated(annotation)
    if isinstance(annotation, type):
        if dataclasses.is_dataclass(annotation) or typing.is_typeddict(annotation):
            return True
        if hasattr(annotation, "model_fields") and hasattr(annotation, "model_validate"):
            return True  # a pydantic model, found without importing pydantic
    return any(_has_fields(arg) for arg in typing.get_args(annotation))


def _mentions_response(annotation: Any) -> bool:
    annotation = strip_annotated(annotation)
    if is_response_class(annotation):
        return True
    return any(_mentions_response(arg) for arg in typing.get_args(annotation))


def model_from_return(annotation: Any, *, label: str) -> Any:
    """The response model a return annotation stands for, or None (see the module docstring)."""
    if annotation is None or annotation is type(None) or is_response_class(annotation):
        return None
    if not _has_fields(annotation):
        return None
    if _mentions_response(annotation):
        raise DeclarationError(
            f"{label}: the return annotation {annotation!r} mixes a Response class with "
            "data types, so it cannot be a response model; declare response_model= "
            "explicitly, or response_model=None to send what the handler returns"
        )
    return annotation


def documented_return(annotation: Any) -> Any:
    """The type a return annotation documents in the schema when it is not a response model:
    built-in types are described as FastAPI describes them; a Response class, None or no
    annotation describe nothing."""
    if annotation is None or annotation is type(None) or _mentions_response(annotation):
        return None
    return annotation


class ResponseSerializer:
    """Checks a handler's return value against the route's model and renders it."""

    __slots__ = (
        "model",
        "route",
        "_validate",
        "_dump_json",
        "_dump_python",
        "_options",
        "_validation_error",
    )

    def __init__(self, model: Any, route: str, options: dict[str, Any]) -> None:
        try:
            import pydantic
        except ImportError:
            raise DeclarationError(
                f"{route}: a response model ({model!r}) needs pydantic: "
                "pip install pydantic (or pass response_model=None)"
            ) from None
        try:
            adapter: Any = pydantic.TypeAdapter(model)
        except Exception as error:
            raise DeclarationError(
                f"{route}: {model!r} cannot be a response model: {error}; "
                "pass response_model=None to send what the handler returns"
            ) from None
        self.model = model
        self.route = route
        self._validate: Callable[..., Any] = adapter.validate_python
        self._dump_json: Callable[..., bytes] = adapter.dump_json
        self._dump_python: Callable[..., Any] = adapter.dump_python
        self._options = options
        self._validation_error: Any = pydantic.ValidationError

    def validate(self, value: Any) -> Any:
        """The value as the model: from attributes as well as dicts, as FastAPI reads it."""
        try:
            return self._validate(value, from_attributes=True)
        except self._validation_error as error:
            errors = [
                {**problem, "loc": ["response", *problem["loc"]]}
                for problem in error.errors(include_url=False)
            ]
            raise ResponseValidationError(errors, body=value, route=self.route) from None

    def to_json(self, value: Any) -> bytes:
        """The JSON body for `value`: validated, then filtered by the model and options."""
        return self._dump_json(self.validate(value), **self._options)

    def to_python(self, value: Any) -> Any:
        """JSON-compatible data for `value`, for a custom response class to render."""
        return self._dump_python(self.validate(value), mode="json", **self._options)


def compile_serializer(model: Any, *, route: str, options: dict[str, Any]) -> ResponseSerializer:
    """The serializer for `model`; a `DeclarationError` naming `route` if it cannot be one."""
    return ResponseSerializer(model, route, options)
