"""Events and effects: the data that crosses the boundary between core and adapter.

Everything here is a small slotted dataclass, read-only by convention. They
are deliberately not `frozen=True`: a frozen dataclass sets each field through
`object.__setattr__`, which made building one five times slower, and every
request builds several. Adapters build a `RequestHead` from their server's view
of a request; the exchange answers with effects (`ReadBody`, `ReadChunk`,
`OpenSpool`, `OpenBody`, `Call`, `CallNext`, `Respond`, `Done`) that the adapter
performs in its own concurrency model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(slots=True)
class RequestHead:
    """Everything known about a request before its body is read.

    Header names must be lower-case bytes, as in ASGI and h11; values are raw
    bytes. `path` is the decoded path without the query string.
    """

    method: str
    path: str
    query_string: bytes = b""
    headers: Headers = ()
    http_version: str = "1.1"
    scheme: str = "http"
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    root_path: str = ""


class StatefulHead(RequestHead):
    """A request head that carries the request's `state`, for apps with HTTP middleware.

    The middleware's `Request` and the handler's are built from the same head,
    so `request.state` set in a middleware is what the handler reads.
    """

    __slots__ = ("state",)
    state: Any

    @classmethod
    def of(cls, head: RequestHead, state: Any) -> StatefulHead:
        stateful = cls(
            head.method,
            head.path,
            head.query_string,
            head.headers,
            head.http_version,
            head.scheme,
            head.client,
            head.server,
            head.root_path,
        )
        stateful.state = state
        return stateful


@dataclass(slots=True)
class ReadBody:
    """Effect: read the whole request body and resume the exchange with it as `bytes`.

    If the body grows past `limit` bytes, throw `BodyTooLarge` into the exchange
    instead; if the client goes away first, throw `ClientDisconnected`.
    """

    limit: int


@dataclass(slots=True)
class ReadChunk:
    """Effect: read the next piece of the request body, at most `size` bytes.

    Resume with `(data, more)`: `more` is false once the body is complete
    (`(b"", False)` when there is no body, or nothing left). The core pulls the
    pieces one by one (multipart uploads are read this way, never held whole),
    counts them against `limit` and raises `BodyTooLarge` itself; an adapter may
    refuse a declared length above `limit` at once. If the client goes away,
    throw `ClientDisconnected`.
    """

    limit: int
    size: int


@dataclass(slots=True)
class OpenSpool:
    """Effect: open an anonymous temporary file for an upload that outgrew memory.

    Resume with `(file, offload)`: `file` a binary file opened for reading and
    writing that the system deletes once it is closed (`tempfile.TemporaryFile`),
    `offload` an async function, `await offload(fn, *args)`, that runs `fn(*args)`
    off the event loop (what `UploadFile`'s async methods use once the file is on
    disk). The core never opens a file itself: writing to and closing the file
    come back to the adapter as `Call` effects (purpose `"spool"`).
    """


@dataclass(slots=True)
class OpenBody:
    """Effect: hand over a way to read the body later, from inside user code.

    A handler that takes the `Request` reads the body when it wants to
    (`request.stream()`, `await request.body()`, `await request.form()`), while
    the exchange waits for its `Call`. So instead of reading, the exchange asks
    for `perform`, an async function the request keeps: `await perform(effect)`
    performs one `ReadChunk`, `OpenSpool` or sync `Call` (a spool write) exactly
    as the driver would, and returns its result or raises what the effect would
    throw in. The body is still pulled one `ReadChunk` at a time, never whole.
    """


@dataclass(slots=True)
class Call:
    """Effect: call user code and resume the exchange with its result.

    `fn(*args, **kwargs)` returns an awaitable when `is_async` is true: await it.
    Otherwise call it somewhere it may block (async adapters use a worker
    thread). If the call raises, throw the exception into the exchange.
    `purpose` says what is being called ("handler", "dependency", "task", ...)
    so an adapter can pick a thread pool; it never changes what must be done.
    `timeout`, when set (tasks only), is a limit in seconds: past it, throw
    `TaskTimedOut` instead of a result. An async call is cancelled; a sync one
    cannot be stopped, so it is left running and the exchange moves on.
    `started`, when set (a task that waits for one of the app's running slots),
    is called once the wait is over, right before the call itself: only then
    does the task count as running, and a stop during the wait abandons it.
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    is_async: bool = False
    purpose: str = "handler"
    timeout: float | None = None
    started: Callable[[], None] | None = None


@dataclass(slots=True)
class StreamBody:
    """A streamed response body: an iterator of byte chunks, sync or async.

    Async adapters iterate a sync iterator in a worker thread, a chunk at a time.
    """

    iterator: Iterator[bytes] | AsyncIterator[bytes]
    is_async: bool


@dataclass(slots=True)
class Respond:
    """Effect: send this response, then resume the exchange with `send(None)`.

    If the response could not be sent completely (the client went away), resume
    with `throw(ClientDisconnected())` instead: the request's background tasks
    are then abandoned (and logged as such), never run.

    `body` is the whole body when `stream` is None. For a HEAD request the body
    is already empty while `content-length` still describes the GET body.
    `tasks` lists the background tasks the handler scheduled, for adapters and
    tests that want to see them; they run when the exchange is resumed.
    `error` is the unhandled exception behind a 500 response, if any.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    stream: StreamBody | None = None
    tasks: tuple[Any, ...] = ()
    error: BaseException | None = None


@dataclass(slots=True)
class CallNext:
    """Effect: call an HTTP middleware, `fn(request, call_next)`, and resume with its result.

    The driver makes `call_next`: called with a request, it starts
    `next.exchange(request)` (the inner part of this same exchange: the next
    middleware, or routing and the handler), drives it with the same driver
    loop until its `Respond`, and returns `next.response(respond)`, a
    `Response`. It must not resume the inner exchange after that: the outer
    exchange does, once its own response is delivered, so that the request's
    background tasks start only then. Sync middleware get a sync `call_next`.
    """

    fn: Callable[..., Any]
    request: Any
    next: Any
    is_async: bool


@dataclass(slots=True)
class Done:
    """Effect: the exchange is over; every task and cleanup has run."""


Effect = ReadBody | ReadChunk | OpenSpool | OpenBody | Call | CallNext | Respond | Done
