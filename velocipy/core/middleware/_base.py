"""`BaseHTTPMiddleware`: a class-based HTTP middleware with a `dispatch(request, call_next)`.

    class Timing(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            response = await call_next(request)
            response.headers["x-handled"] = "yes"
            return response

    app.add_middleware(Timing)

It runs exactly like `@app.middleware("http")`: `dispatch` is the middleware,
and the request's background tasks still start only after the outermost
response is delivered (unlike Starlette's class of the same name).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .._request import Request
from .._responses import Response

CallNextFn = Callable[[Request], Awaitable[Response]]


class BaseHTTPMiddleware:
    """Subclass it and define `dispatch`, or pass `dispatch=` (as Starlette allows)."""

    def __init__(self, app: Any = None, dispatch: Callable[..., Any] | None = None) -> None:
        self.app = app
        self.dispatch_func = dispatch if dispatch is not None else self.dispatch

    async def dispatch(self, request: Request, call_next: CallNextFn) -> Response:
        raise NotImplementedError(f"{type(self).__name__} must define dispatch()")
