"""`CORSMiddleware`: Cross-Origin Resource Sharing, as a pure transform.

Options and answers follow Starlette's middleware of the same name: a
preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
answered at once, 200 "OK" or 400 "Disallowed CORS origin, method, headers";
every other response with an `Origin` gets the `Access-Control-*` headers, and
every response gets `Vary: Origin` (the answer depends on it).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from .._datastructures import Headers, RawHeaders
from .._events import RequestHead, Respond
from .._responses import PlainTextResponse, Response
from ._transform import Transform

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
#: Headers a browser may always send cross-origin (the CORS "safelisted" ones).
SAFELISTED_HEADERS = frozenset({"Accept", "Accept-Language", "Content-Language", "Content-Type"})
_PREFLIGHT_VARY = (
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    "Access-Control-Request-Private-Network"
)
_ACAO = b"access-control-allow-origin"
_ALLOW_ORIGIN_ANY = (_ACAO, b"*")
_VARY_ORIGIN = (b"vary", b"Origin")


class CORSMiddleware(Transform):
    """Answer CORS preflights and add the `Access-Control-*` headers browsers check.

    Args:
        allow_origins: Origins allowed to call the app, or `["*"]` for any.
        allow_methods: Methods allowed in cross-origin requests (`["*"]` for all).
        allow_headers: Request headers allowed beyond the safelisted ones (`["*"]` for all).
        allow_credentials: Allow cookies and `Authorization`; the allowed origin is then
            always echoed rather than `*`.
        allow_origin_regex: A regex that allowed origins match in full.
        allow_private_network: Answer Private Network Access preflights.
        expose_headers: Response headers the browser may show to the page.
        max_age: Seconds a browser may cache a preflight answer.
    """

    def __init__(
        self,
        app: Any = None,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        allow_private_network: bool = False,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
    ) -> None:
        super().__init__(app)
        if isinstance(allow_origins, str) or isinstance(allow_methods, str):
            raise TypeError("allow_origins and allow_methods take a list of strings, not a string")
        methods = ALL_METHODS if "*" in allow_methods else tuple(m.upper() for m in allow_methods)
        self.allow_origins = frozenset(allow_origins)
        # The same as they arrive in a request head, so that a simple request's origin is
        # checked without decoding it.
        self._allowed_raw = frozenset(origin.encode("latin-1") for origin in self.allow_origins)
        self.allow_methods = methods
        self.allow_all_origins = "*" in self.allow_origins
        self.allow_all_headers = "*" in allow_headers
        self.allow_credentials = allow_credentials
        self.allow_origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        self.allow_private_network = allow_private_network
        listed = sorted(SAFELISTED_HEADERS | set(allow_headers))
        self.allow_headers = frozenset(header.lower() for header in listed)
        # With credentials the origin must be named, never `*`.
        self.explicit_origin = not self.allow_all_origins or allow_credentials

        simple: list[tuple[str, str]] = []
        if self.allow_all_origins:
            simple.append(("access-control-allow-origin", "*"))
        if allow_credentials:
            simple.append(("access-control-allow-credentials", "true"))
        if expose_headers:
            simple.append(("access-control-expose-headers", ", ".join(expose_headers)))
        self.simple_headers = tuple(simple)
        # The same, as raw pairs without `access-control-allow-origin` (decided per request),
        # for the fast path of `response`; and every name that path may add.
        self._simple_raw = tuple(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in simple
            if name != "access-control-allow-origin"
        )
        self._added = frozenset(
            {b"vary", b"access-control-allow-origin"} | {name for name, _ in self._simple_raw}
        )

        preflight: dict[str, str] = {"vary": _PREFLIGHT_VARY}
        if not self.explicit_origin:
            preflight["access-control-allow-origin"] = "*"
        preflight["access-control-allow-methods"] = ", ".join(methods)
        preflight["access-control-max-age"] = str(max_age)
        if not self.allow_all_headers:
            preflight["access-control-allow-headers"] = ", ".join(listed)
        if allow_credentials:
            preflight["access-control-allow-credentials"] = "true"
        self.preflight_headers = preflight

    def is_allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins:
            return True
        if self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin):
            return True
        return origin in self.allow_origins

    def request(self, head: RequestHead) -> Response | None:
        if head.method != "OPTIONS":
            return None
        headers = Headers(head.headers)
        origin = headers.get("origin")
        method = headers.get("access-control-request-method")
        if origin is None or method is None:
            return None  # a plain OPTIONS request: the app answers it
        return self._preflight(headers, origin, method)

    def _preflight(self, headers: Headers, origin: str, method: str) -> Response:
        answer = dict(self.preflight_headers)
        failures: list[str] = []
        if self.is_allowed_origin(origin):
            if self.explicit_origin:
                answer["access-control-allow-origin"] = origin
        else:
            failures.append("origin")
        if method not in self.allow_methods:
            failures.append("method")
        requested = headers.get("access-control-request-headers")
        if requested is not None:
            if self.allow_all_headers:
                answer["access-control-allow-headers"] = requested
            elif any(h.strip().lower() not in self.allow_headers for h in requested.split(",")):
                failures.append("headers")
        if headers.get("access-control-request-private-network") is not None:
            if self.allow_private_network:
                answer["access-control-allow-private-network"] = "true"
            else:
                failures.append("private-network")
        if failures:
            return PlainTextResponse("Disallowed CORS " + ", ".join(failures), 400, answer)
        return PlainTextResponse("OK", 200, answer)

    def response(self, head: RequestHead, respond: Respond) -> Respond:
        raw = respond.headers
        for name, _ in raw:
            if name in self._added:  # the app set one of ours already: merge with care
                return self._merge(head, respond)
        # Fast path, run by nearly every response: none of our headers is there yet, so
        # they are appended as raw pairs, with no lookups or re-encoding.
        origin: bytes | None = None
        for name, value in head.headers:
            if name == b"origin":
                origin = value
                break
        if origin is not None:
            raw.extend(self._simple_raw)
            if self.allow_all_origins:
                raw.append(_ALLOW_ORIGIN_ANY if not self.allow_credentials else (_ACAO, origin))
            elif origin in self._allowed_raw or (
                self.allow_origin_regex is not None
                and self.allow_origin_regex.fullmatch(origin.decode("latin-1"))
            ):
                raw.append((_ACAO, origin))
        raw.append(_VARY_ORIGIN)
        return respond

    def _merge(self, head: RequestHead, respond: Respond) -> Respond:
        """`response` when the app's response already has a `Vary` or a CORS header."""
        origin = None
        for name, value in head.headers:
            if name == b"origin":
                origin = value.decode("latin-1")
                break
        headers = RawHeaders(respond.headers)
        if origin is not None:
            for key, text in self.simple_headers:
                headers[key] = text
            if self.allow_all_origins and self.allow_credentials:
                headers["access-control-allow-origin"] = origin
            elif not self.allow_all_origins and self.is_allowed_origin(origin):
                headers["access-control-allow-origin"] = origin
        headers.add_vary_header("Origin")
        return respond
