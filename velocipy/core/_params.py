"""Parameter markers: say where a handler parameter comes from when its type alone does not.

Use them as defaults (`q: int = Query(10)`) or inside `Annotated`
(`q: Annotated[int, Query(alias="size", ge=1)] = 10`). `Depends(fn)` asks for the
result of another callable, resolved (and cached) once per request.

A marker takes FastAPI's keywords. The validation ones (`gt`, `min_length`,
`pattern`, ...) are gathered into `Constraints` and compiled into the
parameter's converter at declaration (`_constraints.py`); the documentation ones
(`title`, `examples`, `deprecated`, ...) into `ParamDoc`, kept on the plan for
the OpenAPI schema. A keyword we do not know is a `TypeError` at once, as for
any Python call: nothing passed to a marker is dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

#: Marks "no default": the parameter is required.
REQUIRED: Any = ...


@dataclass(frozen=True, slots=True)
class Constraints:
    """Validation keywords shared by every marker (and `Field`, `annotated_types`); None = unset."""

    gt: Any = None
    ge: Any = None
    lt: Any = None
    le: Any = None
    multiple_of: Any = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    max_digits: int | None = None
    decimal_places: int | None = None
    strict: bool | None = None
    allow_inf_nan: bool | None = None

    def given(self) -> dict[str, Any]:
        """The keywords that were set, in declaration order of the fields."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def merged(self, other: Constraints) -> Constraints:
        """These constraints with `other`'s set values laid over them."""
        return Constraints(**{**self.given(), **other.given()})


NO_CONSTRAINTS = Constraints()


@dataclass(frozen=True, slots=True)
class ParamDoc:
    """What a parameter says about itself for the OpenAPI schema; no effect on validation."""

    title: str | None = None
    description: str | None = None
    examples: list[Any] | None = None
    openapi_examples: dict[str, Any] | None = None
    deprecated: bool | None = None
    include_in_schema: bool = True
    json_schema_extra: dict[str, Any] | None = None
    #: The name the parameter is given in responses and the schema, when not its wire name.
    serialization_alias: str | None = None
    media_type: str | None = None


NO_DOC = ParamDoc()


class Param:
    """Base marker: `default`, the wire name, constraints and documentation keywords.

    Args:
        default: The value when the request does not carry the parameter; none
            means required.
        default_factory: Called for a fresh default on each request instead.
        alias: The name on the wire (query key, header name, JSON key...).
        validation_alias: Like `alias`, and wins over it for reading the request.
        serialization_alias: The name used in the schema; not read from requests.
        title, description, examples, openapi_examples, deprecated,
        include_in_schema, json_schema_extra: Documentation, kept for OpenAPI.
        gt, ge, lt, le, multiple_of: Bounds for numbers.
        min_length, max_length: Bounds on the length of strings, bytes, collections.
        pattern: A regular expression a string must contain a match of
            (`re.search`, as pydantic). `regex` is its deprecated old name.
        example: Deprecated: one more entry of `examples`.
        max_digits, decimal_places: Limits for `Decimal` values.
        strict: No conversion between types (a query string is never an int).
        allow_inf_nan: Whether `inf`/`nan` floats are accepted.
    """

    source = ""
    media_type_default: str | None = None
    __slots__ = ("default", "default_factory", "alias", "validation_alias", "constraints", "doc")

    def __init__(
        self,
        default: Any = REQUIRED,
        *,
        default_factory: Callable[[], Any] | None = None,
        alias: str | None = None,
        validation_alias: str | None = None,
        serialization_alias: str | None = None,
        title: str | None = None,
        description: str | None = None,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        regex: str | None = None,
        strict: bool | None = None,
        multiple_of: float | None = None,
        allow_inf_nan: bool | None = None,
        max_digits: int | None = None,
        decimal_places: int | None = None,
        examples: list[Any] | None = None,
        example: Any = REQUIRED,
        openapi_examples: dict[str, Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        json_schema_extra: dict[str, Any] | None = None,
        media_type: str | None = None,
    ) -> None:
        if default is not REQUIRED and default_factory is not None:
            raise TypeError(f"{type(self).__name__}(): give default or default_factory, not both")
        if regex is not None:
            warnings.warn(
                "`regex` has been deprecated, please use `pattern` instead",
                DeprecationWarning,
                stacklevel=2,
            )
            if pattern is not None and pattern != regex:
                raise TypeError(f"{type(self).__name__}(): give pattern or regex, not both")
            pattern = regex
        if example is not REQUIRED:
            warnings.warn(
                "`example` has been deprecated, please use `examples` instead",
                DeprecationWarning,
                stacklevel=2,
            )
            examples = [*(examples or []), example]
        for name, value in (("alias", alias), ("validation_alias", validation_alias)):
            if value is not None and not isinstance(value, str):
                # AliasPath / AliasChoices: pydantic model fields only.
                raise TypeError(
                    f"{type(self).__name__}({name}=...) must be a string, got {value!r}"
                )
        self.default = default
        self.default_factory = default_factory
        self.alias = alias
        self.validation_alias = validation_alias
        self.constraints = Constraints(
            gt=gt,
            ge=ge,
            lt=lt,
            le=le,
            multiple_of=multiple_of,
            min_length=min_length,
            max_length=max_length,
            pattern=pattern,
            max_digits=max_digits,
            decimal_places=decimal_places,
            strict=strict,
            allow_inf_nan=allow_inf_nan,
        )
        self.doc = ParamDoc(
            title=title,
            description=description,
            examples=examples,
            openapi_examples=openapi_examples,
            deprecated=deprecated,
            include_in_schema=include_in_schema,
            json_schema_extra=json_schema_extra,
            serialization_alias=serialization_alias,
            media_type=media_type or self.media_type_default,
        )
        if media_type is not None and self.media_type_default is None:
            raise TypeError(f"{type(self).__name__}() takes no media_type (Body, Form, File do)")

    @property
    def description(self) -> str | None:
        return self.doc.description

    @property
    def wire_name(self) -> str | None:
        """The name read from the request, when the marker sets one."""
        return self.validation_alias or self.alias

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.default!r})"


class Path(Param):
    """A path parameter: `/items/{item_id}` fills `item_id`."""

    source = "path"
    __slots__ = ()


class Query(Param):
    """A query-string parameter; `list[T]` collects repeated keys."""

    source = "query"
    __slots__ = ()


class Header(Param):
    """A request header; by default `user_agent` reads `User-Agent`."""

    source = "header"
    __slots__ = ("convert_underscores",)

    def __init__(
        self, default: Any = REQUIRED, *, convert_underscores: bool = True, **keywords: Any
    ) -> None:
        super().__init__(default, **keywords)
        self.convert_underscores = convert_underscores


class Cookie(Param):
    """A cookie from the `Cookie` header."""

    source = "cookie"
    __slots__ = ()


class Body(Param):
    """The JSON body, or with `embed=True` (or several body parameters) one key of it."""

    source = "body"
    media_type_default = "application/json"
    __slots__ = ("embed",)

    def __init__(
        self, default: Any = REQUIRED, *, embed: bool | None = None, **keywords: Any
    ) -> None:
        super().__init__(default, **keywords)
        #: None: embedded only if the route has several body parameters (FastAPI's rule).
        self.embed = embed


class Form(Param):
    """A field of a form body, `application/x-www-form-urlencoded` or `multipart/form-data`.

    `Annotated[Model, Form()]` (a dataclass or pydantic model) reads the whole
    form as the model's fields. Needs python-multipart (`velocipy[multipart]`).
    """

    source = "form"
    media_type_default = "application/x-www-form-urlencoded"
    __slots__ = ()


class File(Form):
    """A file part of a `multipart/form-data` body: `UploadFile`, `bytes` or a list of them.

    Needs python-multipart (`velocipy[multipart]`).
    """

    __slots__ = ()


class Depends:
    """The result of `dependency`, computed once per request and shared (unless `use_cache=False`).

    `dependency` may be a function, async function, generator or async generator
    (code after `yield` runs after the response and its background tasks), or
    any callable. Its own parameters are resolved like a handler's.
    """

    __slots__ = ("dependency", "use_cache")

    def __init__(self, dependency: Callable[..., Any] | None = None, *, use_cache: bool = True):
        self.dependency = dependency
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", repr(self.dependency))
        return f"Depends({name})"
