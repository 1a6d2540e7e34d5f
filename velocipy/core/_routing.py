"""Routes and the router: path templates compiled at declaration, matched per request.

Literal paths live in a dict and cost one lookup whatever else is declared;
templated paths (`/items/{item_id}`, `/files/{rest:path}`) are tried in
declaration order. A literal path wins over a template that also matches it,
so `/users/me` never needs to be declared before `/users/{user_id}`.

A route also carries what was declared about it for documentation (`RouteInfo`:
tags, summary, responses, ...), kept for the OpenAPI schema, and what changes
its behaviour: the status code, the response class, the response model's
serializer and the route-wide dependencies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import DeclarationError
from ._events import Call
from ._plans import Plan
from ._response_model import ResponseSerializer
from ._status import allows_body

_PARAM_RE = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")
_PATTERNS = {
    "str": "[^/]+",
    "path": ".*",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
}


class NoMatchFound(Exception):
    """`url_path_for` found no route of that name taking exactly those parameters."""

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        keys = ", ".join(params) or "no parameters"
        super().__init__(f"No route named {name!r} takes {keys}")


@dataclass(slots=True)
class RouteInfo:
    """What a route declares for its documentation (the OpenAPI schema reads it)."""

    tags: list[str] = field(default_factory=list)
    summary: str | None = None
    description: str = ""
    response_description: str = "Successful Response"
    responses: dict[Any, Any] = field(default_factory=dict)
    deprecated: bool = False
    operation_id: str | None = None
    include_in_schema: bool = True
    openapi_extra: dict[str, Any] | None = None
    #: The response model in force (given, or from the return annotation), or None.
    response_model: Any = None
    #: The type the schema documents for the response: the response model, or a return
    #: annotation of built-in types (trusted, not checked); None documents no type.
    response_schema: Any = None
    #: The `response_model_*` options, without the prefix.
    response_model_options: dict[str, Any] = field(default_factory=dict)
    #: The route-wide dependencies (app's, routers', the decorator's), in the order they run.
    dependencies: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class Route:
    """One declared endpoint: a path template, its methods and the handler's plan."""

    path: str
    methods: frozenset[str]
    endpoint: Callable[..., Any]
    plan: Plan
    status_code: int | None = None
    response_class: Any = None
    name: str = ""
    label: str = ""
    #: Checks and filters what the handler returns, when there is a response model.
    serializer: ResponseSerializer | None = None
    #: The plan's parameters that are route-wide dependencies, not handler arguments.
    hidden: tuple[str, ...] = ()
    info: RouteInfo = field(default_factory=RouteInfo)
    #: The handler's call with no arguments, built once: the effect for a trivial plan.
    bare_call: Call = field(init=False)
    #: The status of a plain (JSON) return value sent as it is, when it may have a
    #: body; else None (then the general path in the exchange builds the response).
    json_status: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.bare_call = Call(self.endpoint, (), {}, self.plan.is_async, "handler")
        status = self.status_code or 200
        plain = self.serializer is None and not self.plan.wants_response
        if self.response_class is None and allows_body(status) and plain:
            self.json_status = status

    def path_for(self, params: dict[str, Any]) -> str | None:
        """This route's path with `params` filled in, if they are exactly its parameters."""
        names = template_params(self.path)[1]
        if set(params) != names:
            return None
        return _PARAM_RE.sub(lambda match: str(params[match.group(1)]), self.path)


def template_params(path: str) -> tuple[re.Pattern[str] | None, frozenset[str]]:
    """Compile a path template: `(regex or None for a literal path, parameter names)`."""
    if not path.startswith("/"):
        raise DeclarationError(f"route path {path!r} must start with '/'")
    names: list[str] = []
    pattern = "^"
    position = 0
    for match in _PARAM_RE.finditer(path):
        name, kind = match.group(1), match.group(2) or "str"
        if kind not in _PATTERNS:
            raise DeclarationError(
                f"route {path!r}: unknown converter {kind!r} (known: {', '.join(_PATTERNS)})"
            )
        if name in names:
            raise DeclarationError(f"route {path!r}: parameter {name!r} appears twice")
        names.append(name)
        pattern += re.escape(path[position : match.start()]) + f"(?P<{name}>{_PATTERNS[kind]})"
        position = match.end()
    if not names:
        if "{" in path or "}" in path:
            raise DeclarationError(f"route {path!r}: malformed parameter")
        return None, frozenset()
    rest = path[position:]
    if "{" in rest or "}" in rest:
        raise DeclarationError(f"route {path!r}: malformed parameter")
    return re.compile(pattern + re.escape(rest) + "$"), frozenset(names)


@dataclass(slots=True)
class _Template:
    regex: re.Pattern[str]
    by_method: dict[str, Route] = field(default_factory=dict)


class Router:
    """Finds the route for a method and path, or says which methods the path allows."""

    def __init__(self) -> None:
        self._literal: dict[str, dict[str, Route]] = {}
        self._templates: list[_Template] = []
        self._template_index: dict[str, _Template] = {}
        self.routes: list[Route] = []

    def add(self, route: Route, regex: re.Pattern[str] | None) -> None:
        if regex is None:
            table = self._literal.setdefault(route.path, {})
        else:
            template = self._template_index.get(route.path)
            if template is None:
                template = self._template_index[route.path] = _Template(regex)
                self._templates.append(template)
            table = template.by_method
        for method in route.methods:
            if method in table:
                raise DeclarationError(f"route {method} {route.path} is declared twice")
        for method in route.methods:
            table[method] = route
        if "GET" in route.methods and "HEAD" not in table:
            table["HEAD"] = route
        self.routes.append(route)

    def url_path_for(self, name: str, params: dict[str, Any]) -> str:
        """The path of the route called `name`, its parameters filled in from `params`."""
        for route in self.routes:
            if route.name == name:
                path = route.path_for(params)
                if path is not None:
                    return path
        raise NoMatchFound(name, params)

    def slash_redirect(self, path: str) -> str | None:
        """For a path no route takes: the same path with its trailing slash toggled,
        when a route takes that one (the redirect FastAPI and Starlette answer)."""
        if path == "/" or not path:
            return None
        other = path[:-1] if path.endswith("/") else path + "/"
        return other if self.match("GET", other) is not None else None

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | frozenset[str] | None:
        """`(route, path params)`; or the allowed methods if only the method is wrong; or None."""
        table = self._literal.get(path)
        if table is not None:
            route = table.get(method)
            if route is not None:
                return route, {}
            allowed = set(table)
        else:
            allowed = set()
        for template in self._templates:
            found = template.regex.match(path)
            if found is None:
                continue
            route = template.by_method.get(method)
            if route is not None:
                return route, found.groupdict()
            allowed.update(template.by_method)
        return frozenset(allowed) if allowed else None
