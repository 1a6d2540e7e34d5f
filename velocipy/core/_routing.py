"""Routes and the router: path templates compiled at declaration, matched per request.

Literal paths live in a dict and cost one lookup whatever else is declared;
templated paths (`/items/{item_id}`, `/files/{rest:path}`) are tried in
declaration order. A literal path wins over a template that also matches it,
so `/users/me` never needs to be declared before `/users/{user_id}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._errors import DeclarationError
from ._events import Call
from ._plans import Plan
from ._status import allows_body

_PARAM_RE = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")
_PATTERNS = {
    "str": "[^/]+",
    "path": ".*",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}",
}


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
    #: The handler's call with no arguments, built once: the effect for a trivial plan.
    bare_call: Call = field(init=False)
    #: The status of a plain (JSON) return value, when it may have a body; else None.
    json_status: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.bare_call = Call(self.endpoint, (), {}, self.plan.is_async, "handler")
        status = self.status_code or 200
        if self.response_class is None and allows_body(status):
            self.json_status = status


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
