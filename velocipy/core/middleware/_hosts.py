"""`TrustedHostMiddleware` and `HTTPSRedirectMiddleware`: answers decided by the request head.

Both follow Starlette's middleware of the same names: a `Host` that matches
no allowed pattern gets 400 "Invalid host header" (or a redirect to its
`www.` form, when only that is allowed); a plain-HTTP request gets a 307 to
the same URL over HTTPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from .._events import RequestHead
from .._responses import PlainTextResponse, RedirectResponse, Response
from ._transform import Transform

_WILDCARD_RULE = "a domain wildcard must look like '*.example.com' (the '*' first, alone)"


def request_host(head: RequestHead) -> str | None:
    """The `Host` header's value (with any port), or None when there is none."""
    for name, value in head.headers:
        if name == b"host":
            return value.decode("latin-1")
    return None


def split_host(netloc: str) -> tuple[str, int | None] | None:
    """`(hostname, port)` of a `Host` header; None if it is malformed."""
    if netloc.startswith("["):  # an IPv6 literal: [::1]:8000
        end = netloc.find("]")
        if end == -1:
            return None
        host, rest = netloc[: end + 1], netloc[end + 1 :]
    else:
        host, _, port_text = netloc.partition(":")
        rest = ":" + port_text if port_text or netloc.endswith(":") else ""
    if not host:
        return None
    if not rest:
        return host, None
    if not rest.startswith(":") or not rest[1:].isdigit():
        return None
    return host, int(rest[1:])


def url_of(head: RequestHead, scheme: str, netloc: str) -> str:
    """The request's URL with `scheme` and `netloc` instead of its own."""
    url = f"{scheme}://{netloc}{quote(head.root_path + head.path)}"
    if head.query_string:
        url += "?" + head.query_string.decode("latin-1")
    return url


class TrustedHostMiddleware(Transform):
    """Refuse requests whose `Host` header names none of `allowed_hosts` (HTTP Host attacks).

    Args:
        allowed_hosts: Host names, `*.example.com` wildcards, or `*` (the default: any).
        www_redirect: Redirect `example.com` to `www.example.com` when only the latter is
            allowed.
    """

    def __init__(
        self,
        app: Any = None,
        allowed_hosts: Sequence[str] | None = None,
        www_redirect: bool = True,
    ) -> None:
        super().__init__(app)
        if allowed_hosts is None:
            allowed_hosts = ["*"]
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts takes a list of host names, not a string")
        for pattern in allowed_hosts:
            if "*" in pattern[1:] or (
                pattern.startswith("*") and pattern != "*" and not pattern.startswith("*.")
            ):
                raise ValueError(f"allowed host {pattern!r}: {_WILDCARD_RULE}")
        self.allowed_hosts = [pattern.lower() for pattern in allowed_hosts]
        self.allow_any = "*" in self.allowed_hosts
        self.www_redirect = www_redirect

    def request(self, head: RequestHead) -> Response | None:
        if self.allow_any:
            return None
        netloc = request_host(head)
        parsed = split_host(netloc) if netloc is not None else None
        if netloc is None or parsed is None:
            return PlainTextResponse("Invalid host header", 400)
        host = parsed[0].lower()
        www_allowed = False
        for pattern in self.allowed_hosts:
            if host == pattern or (pattern.startswith("*") and host.endswith(pattern[1:])):
                return None
            if "www." + host == pattern:
                www_allowed = True
        if www_allowed and self.www_redirect:
            return RedirectResponse(url_of(head, head.scheme, "www." + netloc))
        return PlainTextResponse("Invalid host header", 400)


class HTTPSRedirectMiddleware(Transform):
    """Redirect every plain-HTTP request to the same URL over HTTPS (307, method kept)."""

    def __init__(self, app: Any = None) -> None:
        super().__init__(app)

    def request(self, head: RequestHead) -> Response | None:
        if head.scheme != "http":
            return None
        netloc = request_host(head)
        if netloc is None and head.server is not None:
            netloc = f"{head.server[0]}:{head.server[1]}"
        parsed = split_host(netloc) if netloc else None
        if netloc is None or parsed is None:
            return PlainTextResponse("Invalid host header", 400)
        host, port = parsed
        if port in (80, 443):
            netloc = host
        return RedirectResponse(url_of(head, "https", netloc), 307)
