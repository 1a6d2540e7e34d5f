"""ASGI request side: an `http` scope becomes a `RequestHead`; `http.request` messages a body.

Kept apart from `asgi.py` so the request translation can be read (and tested) on
its own. Both functions sit on the hot path of every request, so they do the
least work that is correct: the scope's header list is handed to the core as it
is (ASGI already requires lower-case names), and the body is only read when the
core asks for it with `ReadBody`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from velocipy.core import BodyTooLarge, ClientDisconnected, ClientError, RequestHead

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


#: The optional keys of an `http` scope, with the values the ASGI spec gives them when absent.
_OPTIONAL = {
    "root_path": "",
    "client": None,
    "server": None,
    "http_version": "1.1",
    "scheme": "http",
}


def head_from_scope(scope: Scope) -> RequestHead:
    """The core's `RequestHead` for an ASGI `http` scope."""
    # Indexing, not `scope.get`: every server we know of sends all of these keys, and a
    # subscript costs a fraction of a method call. A scope without some of them (the spec
    # makes them optional) takes the rare path below with the spec's defaults filled in.
    try:
        root_path = scope["root_path"]
        client = scope["client"]
        server = scope["server"]
        http_version = scope["http_version"]
        scheme = scope["scheme"]
    except KeyError:
        return head_from_scope({**_OPTIONAL, **scope})
    path = scope["path"]
    if root_path:
        path = route_path(path, root_path)
    return RequestHead(
        scope["method"],
        path,
        scope["query_string"],  # `query_string` and `headers` are required by the spec
        scope["headers"],
        http_version,
        scheme,
        client if client is None or type(client) is tuple else _address(client),
        server if server is None or type(server) is tuple else _address(server),
        root_path,
    )


_FRAMED_BY_HEADERS = frozenset(("1.1", "1.0"))


#: The slowest body accepted, in bytes per second over each window (as the built-in
#: server's `--min-body-rate` and `--body-rate-window`); a rate of 0 turns it off.
DEFAULT_MIN_BODY_RATE = 240.0
DEFAULT_BODY_RATE_WINDOW = 10.0

_monotonic = time.monotonic


class BodyTooSlow(ClientError):
    """The client sent its body slower than the minimum body rate (or stalled a window)."""

    status_code = 408


class BodyRate:
    """The minimum body rate of one adapter, and the window it is averaged over."""

    __slots__ = ("rate", "window")

    def __init__(self, rate: float, window: float) -> None:
        if not rate >= 0:
            raise ValueError(f"min_body_rate must not be negative, got {rate}")
        if not window > 0:
            raise ValueError(f"body_rate_window must be more than 0 seconds, got {window}")
        self.rate = rate
        self.window = window


class _RateWindow:
    """Bytes received in the current window of one request's body, and when it began."""

    __slots__ = ("start", "received")

    def __init__(self) -> None:
        self.start = _monotonic()
        self.received = 0


#: Where a streamed body keeps its window between two pieces: the request's scope.
_WINDOW_KEY = "velocipy.body_rate_window"


async def _receive_rated(receive: Receive, limits: BodyRate, window: _RateWindow) -> Message:
    """The next message of a body that comes in several, within the minimum body rate.

    Only bodies in more than one message are measured (the usual one-message body
    costs nothing). No message for a whole window counts as a rate of zero: the
    server (uvicorn has no body timeout) would otherwise wait for ever.
    """
    if not limits.rate:
        return await receive()
    with anyio.move_on_after(limits.window):
        message = await receive()
        window.received += len(message.get("body", b""))
        elapsed = _monotonic() - window.start
        if elapsed >= limits.window:
            if window.received < limits.rate * elapsed:
                raise BodyTooSlow("The request body arrived too slowly")
            window.start += elapsed
            window.received = 0
        return message
    raise BodyTooSlow("The request body arrived too slowly")


def _not_body(message: Message) -> Exception:
    if message["type"] == "http.disconnect":
        return ClientDisconnected()
    return RuntimeError(f"expected an 'http.request' message, got {message['type']!r}")


async def read_body(
    scope: Scope, receive: Receive, rate: BodyRate, limit: int, size: int = 0
) -> Any:
    """Read the whole request body from `http.request` messages (`ReadBody`).

    With `size` (`ReadChunk`), read the next message only and return
    `(body, more_body)`; the core counts the pieces against its limit.

    Raises:
        BodyTooLarge: The body is (or declares itself) longer than `limit` bytes;
            a declared length is refused before reading any of it.
        ClientDisconnected: `http.disconnect` came before the last body message.
        BodyTooSlow: A body in several messages came slower than `rate` allows.
    """
    # The length the request declares comes first, so a body declared too long is refused
    # before any of it is read (and before the server sends `100 Continue` for it).
    # The scan is written out here, not in a helper: it runs for every request with a body.
    if size:
        return await _read_piece(scope, receive, rate)
    for name, value in scope["headers"]:  # required by the spec, lower-case names
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                break  # invalid: the server would have refused it; read what comes
            if declared > limit:
                raise BodyTooLarge(limit)
            if declared == 0:
                return b""
            break
        if name == b"transfer-encoding":
            break  # chunked: the length is known once read
    else:
        # RFC 9112, section 6.3: an HTTP/1.x request with neither header has no body, so
        # there is nothing to wait for (a GET with a `Request` parameter, say). HTTP/2 and
        # later frame the body themselves: read it.
        if scope.get("http_version", "1.1") in _FRAMED_BY_HEADERS:
            return b""
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
    window = _RateWindow()
    while True:
        message = await _receive_rated(receive, rate, window)
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


async def _read_piece(scope: Scope, receive: Receive, rate: BodyRate) -> tuple[bytes, bool]:
    """One `http.request` message as `(body, more_body)`: the `ReadChunk` effect."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.strip() == b"0":
                return b"", False
            break
        if name == b"transfer-encoding":
            break
    else:
        if scope.get("http_version", "1.1") in _FRAMED_BY_HEADERS:
            return b"", False  # RFC 9112, section 6.3: no framing header, no body
    window = scope.get(_WINDOW_KEY)
    if window is None:
        message = await receive()  # the first piece: waited for like any request body
        if message.get("more_body", False):
            scope[_WINDOW_KEY] = _RateWindow()  # more to come: measure from here
    else:
        message = await _receive_rated(receive, rate, window)
    if message["type"] != "http.request":
        raise _not_body(message)
    return message.get("body", b""), message.get("more_body", False)
