"""`Transform`: the shape of built-in middleware, pure hooks around the exchange.

A transform sees the request head before anything else runs and may answer
at once (a CORS preflight, a refused host, a redirect to HTTPS); otherwise it
sees the response (`Respond`) on its way out and may change its status and
headers or wrap its body. It does no I/O and calls no user code, so it needs
nothing from a driver and costs a few Python calls per request.
"""

from __future__ import annotations

from typing import Any

from .._events import RequestHead, Respond
from .._responses import Response


class Transform:
    """Base class of the built-in middleware; `app.add_middleware(cls, **options)` builds one.

    Subclasses take the app as their first argument (unused, it is there so
    that the constructor looks like Starlette's) and their options as keywords.
    """

    def __init__(self, app: Any = None) -> None:
        self.app = app

    def request(self, head: RequestHead) -> Response | None:
        """Answer the request at once with a response, or return None to let it through."""
        return None

    def response(self, head: RequestHead, respond: Respond) -> Respond:
        """The response to send instead of `respond` (which may be edited and returned)."""
        return respond
