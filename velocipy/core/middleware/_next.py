"""What `call_next` hands an HTTP middleware: the inner part of the exchange and its response.

`NextPart` is the core's half of `call_next`: the driver asks it for the inner
exchange (`exchange(request)`), drives that to its `Respond`, and asks it for
the `NextResponse` to return (`response(respond)`). It remembers every inner
exchange it started, so that the outer flow can finish them (run their tasks)
once the outer response has been delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from .._events import Respond, StreamBody
from .._exchange import Exchange
from .._request import Request
from .._responses import Response

if TYPE_CHECKING:
    from ._stack import MiddlewareStack


class NextPart:
    """The layers below one HTTP middleware, for one request."""

    __slots__ = ("stack", "index", "started", "tasks")

    def __init__(self, stack: MiddlewareStack, index: int) -> None:
        self.stack = stack
        self.index = index
        #: Every inner exchange `call_next` started, in order.
        self.started: list[Exchange] = []
        #: The background tasks of their responses: the outer response carries them.
        self.tasks: list[Any] = []

    def exchange(self, request: Any) -> Exchange:
        """A new inner exchange for `request` (the request the middleware was given)."""
        if not isinstance(request, Request):
            raise TypeError(f"call_next() takes the middleware's request, got {request!r}")
        head = request.head
        exchange = Exchange(head, self.stack.flow(self.index, head), self.stack.app)
        self.started.append(exchange)
        return exchange

    def response(self, effect: Any) -> NextResponse:
        """The response `call_next` returns, for the inner exchange's `Respond`."""
        if type(effect) is not Respond:
            raise RuntimeError("the inner part of the exchange ended without a response")
        self.tasks.extend(effect.tasks)
        return NextResponse(effect)


class MiddlewareRequest(Request):
    """The request an HTTP middleware gets: everything but the body, which is not read yet."""

    __slots__ = ()

    async def body(self) -> bytes:
        raise RuntimeError(
            "reading the request body in HTTP middleware is not supported yet; "
            "read it in a dependency or the handler"
        )

    async def json(self) -> Any:
        return await self.body()


class NextResponse(Response):
    """The response `call_next` returns: the inner part's status, headers and body.

    A streamed body stays streamed. Headers are live (`response.headers["x"] = "1"`);
    `body_iterator` may be replaced to transform the body on its way out.
    """

    def __init__(self, respond: Respond) -> None:
        self.status_code = respond.status
        self.raw_headers = []
        length: bytes | None = None
        for name, value in respond.headers:
            if name == b"content-length":
                length = value  # recomputed on the way out, unless the body is kept
            else:
                self.raw_headers.append((name, value))
        self._length = length
        self.body = respond.body
        self._inner_body = respond.body
        self._stream = respond.stream
        #: The unhandled exception behind a 500 from the inner part, if any.
        self.error = respond.error

    def stream_body(self) -> StreamBody | None:
        return self._stream

    def kept_length(self) -> bytes | None:
        """The inner `content-length`, if the body is the inner one (HEAD keeps it)."""
        if self._stream is None and self.body is self._inner_body:
            return self._length
        return None

    @property
    def body_iterator(self) -> AsyncIterator[bytes]:
        """The body's chunks, as an async iterator (as Starlette's `call_next` gives)."""
        stream = self._stream
        if stream is None:
            return _async_chunks(iter((self.body,)) if self.body else iter(()))
        if stream.is_async:
            return stream.iterator  # type: ignore[return-value]
        return _async_chunks(stream.iterator)  # type: ignore[arg-type]

    @body_iterator.setter
    def body_iterator(self, iterator: Any) -> None:
        self._stream = StreamBody(iterator, hasattr(iterator, "__anext__"))
        self.body = b""


async def _async_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
