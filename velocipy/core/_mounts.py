"""Mounts: another application served under a path prefix (`app.mount("/api", other)`).

A mount takes every request under its prefix that no route of the app takes
(routes first, then mounts in the order declared), as Starlette's `Mount` does
for a prefix `/static`: `/static/x` goes to the mounted app as `/x` with
`/static` added to its `root_path`; `/static` itself is redirected to
`/static/` when `redirect_slashes` is on.

Three kinds of target, told apart at declaration:

- *native*: anything with `exchange(head) -> Exchange` (a VelociPy app,
  `StaticFiles`): served by the core on every driver, inside the parent's
  VelociPy middleware (a VelociPy app with pure ASGI middleware is served as
  an ASGI app instead: its middleware exists only around its ASGI entry);
- *asgi*: an ASGI 3 application (an `async` callable), served by the ASGI
  adapter when the parent is served over ASGI;
- *wsgi*: a PEP 3333 application (a plain callable of two arguments), served by
  the WSGI adapter when the parent is served over WSGI.

The core finds the mount for a path (`find_mount`); adapters that can serve a
foreign kind ask it before they build an exchange. Nothing here runs for an app
without mounts, nor for a request a route takes.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any

from ._errors import DeclarationError
from ._events import RequestHead

NATIVE, ASGI, WSGI = "velocipy", "asgi", "wsgi"


@dataclass(slots=True)
class Mount:
    """An application mounted at `path` (no trailing slash; "" mounts at the root)."""

    path: str
    app: Any
    name: str | None
    #: `NATIVE`, `ASGI` or `WSGI`: what the mounted object is.
    declared: str

    @property
    def kind(self) -> str:
        """Who serves it: `declared`, except that a VelociPy app with pure ASGI middleware
        is served through its ASGI entry (`ASGI`), the only place its middleware runs."""
        if self.declared == NATIVE and has_asgi_middleware(self.app):
            return ASGI
        return self.declared

    @property
    def label(self) -> str:
        """How errors name this mount."""
        named = f" ({self.name!r})" if self.name else ""
        return f"mount {self.path or '/'!r}{named} of {describe(self.app)}"

    def rest_of(self, path: str) -> str | None:
        """The path under the mount for `path` (starting with "/"), or None if not under it."""
        prefix = self.path
        if not prefix:
            return path if path.startswith("/") else None
        if path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/":
            return path[len(prefix) :]
        return None


def has_asgi_middleware(app: Any) -> bool:
    """Whether `app` (a VelociPy app) has pure ASGI middleware, without building its stack."""
    check = getattr(app, "has_asgi_middleware", None)
    return bool(check is not None and check())


def describe(app: Any) -> str:
    """A short name of a mounted object for error messages."""
    kind = type(app)
    if inspect.isfunction(app) or inspect.ismethod(app):
        return f"{app.__module__}.{app.__qualname__}"
    return f"{kind.__module__}.{kind.__qualname__}"


def new_mount(path: str, app: Any, name: str | None) -> Mount:
    """Check a `mount()` declaration and tell what kind of app it mounts."""
    if path and not path.startswith("/"):
        raise DeclarationError(f"mount path {path!r} must start with '/'")
    path = path.rstrip("/")
    if "{" in path or "}" in path:
        raise DeclarationError(
            f"mount path {path!r}: path parameters in a mount path are not supported"
        )
    return Mount(path, app, name, kind_of(app, path))


def kind_of(app: Any, path: str) -> str:
    """`NATIVE`, `ASGI` or `WSGI` for a mounted object; a `DeclarationError` if none fits."""
    if callable(getattr(app, "exchange", None)):
        return NATIVE
    if not callable(app):
        raise DeclarationError(f"mount {path or '/'!r}: {app!r} is not an application")
    call = app if inspect.isroutine(app) else type(app).__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__func__", None)
    ):
        return ASGI
    try:
        parameters = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        parameters = []
    if len(parameters) == 2:
        return WSGI
    raise DeclarationError(
        f"mount {path or '/'!r}: cannot tell whether {describe(app)} is an ASGI app "
        "(an async callable of scope, receive, send) or a WSGI app "
        "(a callable of environ, start_response)"
    )


def find_mount(app: Any, method: str, path: str) -> tuple[Mount, str, str] | None:
    """The mount serving `method path` on `app`: `(mount, prefix, rest)`, or None.

    None when a route of the app takes the request (routes come first) or no
    mount's prefix fits. Native mounts are followed inward, so the answer names
    the innermost mount and the whole prefix in front of it: a native answer
    means the core serves the request, a foreign one that an adapter must.
    """
    prefix = ""
    found: tuple[Mount, str, str] | None = None
    while True:
        if isinstance(app.router.match(method, path), tuple):
            return found  # None at the top; else the native mount whose route it is
        for mount in app.mounts:
            rest = mount.rest_of(path)
            if rest is not None:
                break
        else:
            return found
        prefix += path[: len(path) - len(rest)]
        found = (mount, prefix, rest)
        if mount.kind != NATIVE or not getattr(mount.app, "mounts", None):
            return found
        app, path = mount.app, rest


def mounted_head(head: RequestHead, prefix: str, rest: str) -> RequestHead:
    """The head a mounted app sees: the path under the mount, the prefix added to `root_path`.

    A copy of the same class, so a `StatefulHead` keeps its `state` (shared, not copied):
    what the parent's middleware set on `request.state` is what the mounted app reads.
    """
    child = copy.copy(head)
    child.path = rest
    child.root_path = head.root_path + prefix
    return child
