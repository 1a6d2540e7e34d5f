"""Parameter markers: say where a handler parameter comes from when its type alone does not.

Use them as defaults (`q: int = Query(10)`) or inside `Annotated`
(`q: Annotated[int, Query(alias="size")] = 10`). `Depends(fn)` asks for the
result of another callable, resolved (and cached) once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Marks "no default": the parameter is required.
REQUIRED: Any = ...


class Param:
    """Base marker: `default`, an optional `alias` (the name on the wire) and a description."""

    source = ""
    __slots__ = ("default", "alias", "description")

    def __init__(
        self, default: Any = REQUIRED, *, alias: str | None = None, description: str = ""
    ) -> None:
        self.default = default
        self.alias = alias
        self.description = description

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
        self,
        default: Any = REQUIRED,
        *,
        alias: str | None = None,
        convert_underscores: bool = True,
        description: str = "",
    ) -> None:
        super().__init__(default, alias=alias, description=description)
        self.convert_underscores = convert_underscores


class Cookie(Param):
    """A cookie from the `Cookie` header."""

    source = "cookie"
    __slots__ = ()


class Body(Param):
    """The JSON body, or with `embed=True` (or several body parameters) one key of it."""

    source = "body"
    __slots__ = ("embed",)

    def __init__(
        self,
        default: Any = REQUIRED,
        *,
        alias: str | None = None,
        embed: bool = False,
        description: str = "",
    ) -> None:
        super().__init__(default, alias=alias, description=description)
        self.embed = embed


class Form(Param):
    """A field of an `application/x-www-form-urlencoded` body."""

    source = "form"
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
