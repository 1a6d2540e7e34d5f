"""What `call_next` hands an HTTP middleware: the inner part of the exchange and its response.

`NextPart` is the core's half of `call_next`: the driver asks it for the inner
exchange (`exchange(request)`), drives that to its `Respond`, and asks it for
the `NextResponse` to return (`response(respond)`). It remembers every inner
exchange it started, so that the outer flow can finish them (run their tasks)
once the outer response has been delivered.

A middleware may read the request body (`await request.body()`, as in
Starlette): the inner part then gets the same bytes, its body effects answered
from them by `replay_body` instead of the driver. A body the middleware
streamed to its end was kept by nobody: the inner part's reads raise
"Stream consumed".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import BodyTooLarge
from .._events import Effect, OpenBody, ReadBody, ReadChunk, Respond, StreamBody
from .._exchange import Exchange
from .._request import Perform, Request
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
        flow = self.stack.flow(self.index, head)
        access = request._access
        if access is not None:  # the middleware's own request: has it read the body?
            if request._body is not None:
                flow = replay_body(flow, request._body, access.perform)
            elif request._consumed or request._pieces is not None:
                flow = replay_body(flow, None, access.perform)
            elif isinstance(access.perform, _Replay):  # an outer middleware read it
                flow = replay_body(flow, access.perform.left, access.perform.perform)
        exchange = Exchange(head, flow, self.stack.app)
        self.started.append(exchange)
        return exchange

    def response(self, effect: Any) -> NextResponse:
        """The response `call_next` returns, for the inner exchange's `Respond`."""
        if type(effect) is not Respond:
            raise RuntimeError("the inner part of the exchange ended without a response")
        self.tasks.extend(effect.tasks)
        return NextResponse(effect)


class MiddlewareRequest(Request):
    """The request an HTTP middleware gets; its body is read only if the middleware asks."""

    __slots__ = ()


Flow = Generator[Effect, Any, None]


def replay_body(flow: Flow, body: bytes | None, perform: Perform) -> Flow:
    """`flow` with its body effects answered from `body`, read by a middleware already.

    `None` means the middleware streamed the body away: each read then raises
    "Stream consumed". Every other effect goes to the driver unchanged.
    """
    left = body
    try:
        effect = next(flow)
        while True:
            kind = type(effect)
            if kind is ReadBody or kind is ReadChunk:
                if left is None:
                    effect = flow.throw(RuntimeError("Stream consumed"))
                elif kind is ReadBody:
                    limit = effect.limit  # type: ignore[union-attr]
                    if len(left) > limit:
                        effect = flow.throw(BodyTooLarge(limit))
                    else:
                        effect = flow.send(left)
                else:
                    size = effect.size  # type: ignore[union-attr]
                    piece, left = left[:size], left[size:]
                    effect = flow.send((piece, bool(left)))
            elif kind is OpenBody:
                effect = flow.send(_Replay(body, perform))
            else:
                try:
                    value = yield effect
                except BaseException as error:
                    effect = flow.throw(error)
                else:
                    effect = flow.send(value)
    except StopIteration:
        return


class _Replay:
    """A `perform` whose reads come from a body a middleware read; spooling goes to `perform`."""

    __slots__ = ("left", "perform")

    def __init__(self, body: bytes | None, perform: Perform) -> None:
        #: What is left to read of the kept body (None: it was streamed away).
        self.left = body
        self.perform = perform

    async def __call__(self, effect: Effect) -> Any:
        if type(effect) is not ReadChunk:
            return await self.perform(effect)
        rest = self.left
        if rest is None:
            raise RuntimeError("Stream consumed")
        piece, self.left = rest[: effect.size], rest[effect.size :]
        return piece, bool(self.left)


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
