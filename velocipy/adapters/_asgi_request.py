"""ASGI request side: an `http` scope becomes a `RequestHead`; `http.request` messages a body.

Kept apart from `asgi.py` so the request translation can be read (and tested) on
its own. Both functions sit on the hot path of every request, so they do the
least work that is correct: the scope's header list is handed to the core as it
is (ASGI already requires lower-case names), and the body is only read when the
core asks for it with `ReadBody`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from velocipy.core import BodyTooLarge, ClientDisconnected, RequestHead

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


def route_path(path: str, root_path: str) -> str:
    """The path the app routes on: `path` without the `root_path` it is mounted at.

    Current servers (uvicorn since 0.26, hypercorn) put the full path, root
    included, in `path`, as the ASGI spec now asks; older ones and some
    middleware leave the root out. Strip it only when it is really there, on a
    segment boundary, so both kinds work.
    """
    if not root_path or not path.startswith(root_path):
        return path
    rest = path[len(root_path) :]
    if not rest:
        return "/"
    if rest[0] == "/":
        return rest
    return path  # "/apiary" is not under the root "/api"


def _address(value: Any) -> tuple[str, int]:
    # Servers give tuples; some give two-item lists, or `[path, None]` for unix sockets.
    return (value[0], value[1])


def head_from_scope(scope: Scope) -> RequestHead:
    """The core's `RequestHead` for an ASGI `http` scope."""
    get = scope.get
    root_path = get("root_path", "")
    path = scope["path"]
    if root_path:
        path = route_path(path, root_path)
    client = get("client")
    server = get("server")
    return RequestHead(
        scope["method"],
        path,
        scope["query_string"],  # `query_string` and `headers` are required by the spec
        scope["headers"],
        get("http_version", "1.1"),
        get("scheme", "http"),
        client if client is None or type(client) is tuple else _address(client),
        server if server is None or type(server) is tuple else _address(server),
        root_path,
    )


def declared_length(scope: Scope) -> int | None:
    """The body length the request declares: its `content-length`, or 0 when HTTP/1.x
    framing says there is no body (neither `content-length` nor `transfer-encoding`).

    None means "unknown until read": chunked, HTTP/2 and later, or an invalid length
    (which the server would have refused already).
    """
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        if name == b"transfer-encoding":
            return None
    if scope.get("http_version", "1.1") in ("1.1", "1.0"):
        return 0  # RFC 9112, section 6.3: no framing headers means no body
    return None


def _not_body(message: Message) -> Exception:
    if message["type"] == "http.disconnect":
        return ClientDisconnected()
    return RuntimeError(f"expected an 'http.request' message, got {message['type']!r}")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """Read the whole request body from `http.request` messages.

    Raises:
        BodyTooLarge: The body is (or declares itself) longer than `limit` bytes;
            a declared length is refused before reading any of it.
        ClientDisconnected: `http.disconnect` came before the last body message.
    """
    declared = declared_length(scope)
    if declared is not None:
        if declared > limit:
            raise BodyTooLarge(limit)
        if declared == 0:
            return b""  # nothing to wait for (a GET with a `Request` parameter, say)
    message = await receive()
    if message["type"] != "http.request":
        raise _not_body(message)
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: one message holds it all
        if len(body) > limit:
            raise BodyTooLarge(limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _not_body(message)
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
