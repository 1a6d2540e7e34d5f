"""One request to an ASGI application on the built-in server: its `receive`, `send` and response.

Theory of operation. The connection serves every request the same way: it
asks the server's app for an exchange, drives it to a `Respond`, writes that
response with its parser's framing (h11 or httptools), then resumes the
exchange. For an ASGI app the exchange is an `ASGICycle`, so everything the
connection does (limits, timeouts, the minimum body rate, 100-continue, keep-alive,
draining an unread body, Date/Server headers, the access log, graceful stops) holds
for ASGI apps without a second copy of it. Two tasks share the cycle:

- the *app task* runs `app(scope, receive, send)`. The server starts it as one of
  its background flows, so it may run on after the response (Starlette's
  background tasks do) while the connection serves its next request, and a
  graceful stop waits for it like for any background task. On asyncio its
  first step is taken at once, on the connection's turn (`start_eagerly`): an app
  that answers without waiting has sent its whole response when `start()`
  returns, and the connection never waits;
- the *connection task* drives the cycle: `start()` gives the response, or else a
  call that waits until the app has sent `http.response.start` (or failed, or
  returned); a response's body still to come is an async iterator of what the
  app sends with `more_body`.

One task at a time reads the socket. Until the response begins, the
connection only waits for it, so the app's `receive()` reads the body itself,
on the app's task (a small body whole, in one message). Once the response has
begun, `receive()` asks and the connection task reads the next piece between
two pieces of the response. So the body is read only as fast as the app
consumes it (flow control: the channel stops reading the socket past its
high-water mark), and once the response is complete nothing of this request
reads any more (a read still running then makes the connection close after
the response rather than read the next request under it).

As uvicorn: `receive()` gives `http.disconnect` once the response is complete,
or once the client is gone; waiting after the whole body was received, it
returns when the peer closes the connection. `send()` after a disconnect is
ignored; a message out of order raises `RuntimeError`. An app that fails or
returns before `http.response.start` gets a 500 (connection closed); after it,
the connection is closed mid-response. The last body message returns only once
the response has been handed to the kernel (it yields one turn of the loop,
which is usually all the connection needs to write it), so whatever the app
does after it (background work) starts after the client has its response.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Generator, MutableMapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from velocipy.core import (
    BodyTooLarge,
    Call,
    ClientDisconnected,
    ClientError,
    Done,
    RequestHead,
    Respond,
    StreamBody,
)

from ._wire import reason

if TYPE_CHECKING:
    from ._asgi_host import ASGIHost

logger = logging.getLogger("velocipy.server")

Message = MutableMapping[str, Any]

#: Bytes the app may have sent and the connection not yet written before `send` waits.
WRITE_HIGH_WATER = 64 * 1024

#: Most bytes asked of the body reader at once (it returns what has arrived, up to this).
READ_SIZE = 64 * 1024

_DONE = Done()
_PLAIN = (b"content-type", b"text/plain; charset=utf-8")
_CLOSE = (b"connection", b"close")

#: The cycle's phases, as the connection sees them.
WAITING, RESPONDING, OVER = 0, 1, 2


class ASGICycle:
    """One request and its response between an ASGI app and a connection (see the docstring).

    To the connection it is an exchange (`start`, `send`, `throw`, `head`); to the app
    it is `receive` and `send` (as `app_send`).
    """

    # Class-level defaults, not slots: a request sets only what it changes, which is
    # most of this object's cost on a request that sends its response at once.
    phase = WAITING
    #: The response's status and headers, once the app sent `http.response.start`.
    status: int | None = None
    headers: list[tuple[bytes, bytes]]
    #: Body bytes the app sent that the connection has not written yet.
    queued = 0
    #: The app sent its last body message (`more_body` false).
    final = False
    #: The connection has written the whole response.
    complete = False
    #: The client is gone (or the response could not be written): the app is told so.
    disconnected = False
    app_done = False
    #: The app waits in `receive()` for the next piece of the body.
    wanted = False
    piece: tuple[bytes, bool] | None = None
    #: The app has had its last `http.request` message.
    request_complete = False
    #: Whether the request has a body: found out on the first `receive`, if any.
    has_body: bool | None = None
    received = 0
    #: Why the body could not be read (too large, too slow, malformed), if so.
    read_error: ClientError | None = None
    #: A call of the app's is reading the body itself (see `receive`).
    reading = False
    _connection_waiter: Any = None
    #: One waiter per waiting call of the app's (it may receive in one task and send in
    #: another); a cancelled one must not cancel the others, so none is shared.
    _app_waiters: list[Any] | tuple[()] = ()

    def __init__(self, host: ASGIHost, head: RequestHead, connection: Any) -> None:
        self.host = host
        self.head = head
        #: The connection serving it (h11's or httptools', with the `raw_path` of the target).
        self.connection = connection
        self.chunks: list[bytes] = []
        self.is_head = head.method == "HEAD"
        #: A body small enough to be read whole, in one `http.request` message, as uvicorn
        #: gives a body that came with its head; a larger or chunked one goes in pieces.
        length = self.connection.content_length
        self.whole = length is not None and length <= READ_SIZE
        #: The asyncio loop (None on trio): waits are plain futures there, not anyio Events,
        #: whose creation alone costs a lookup of the running library every time.
        self.loop = host.loop

    # -- the exchange, as the connection drives it ------------------------------------------

    def start(self) -> Call | Respond:
        """The first effect: the response, if the app has it at once; else a wait for it.

        On asyncio the app takes its first step in here (see `ASGIHost.start_app`),
        and an app that answers without waiting has sent its response already.
        """
        self.host.start_app(self)
        if self.status is not None or self.app_done or self.read_error is not None:
            self.phase = RESPONDING
            return self._respond()
        return Call(self._until_response, (), {}, True, "handler")

    def send(self, value: Any) -> Respond | Done:
        """Resume: after the wait, the response to send; after the response, the end."""
        if self.phase == WAITING:
            self.phase = RESPONDING
            return self._respond()
        self.phase = OVER
        self.complete = True
        if self._app_waiters:
            self._wake_app()
        return _DONE

    def throw(self, error: BaseException) -> Done:
        """The wait failed (client gone, server stopping), or the response was not delivered."""
        self.disconnected = True
        self._wake_app()
        if self.phase == WAITING:
            self.phase = OVER
            raise error
        self.phase = OVER
        return _DONE

    def close(self) -> None:
        """Nothing to release: the app task is the server's to finish or cancel."""

    async def _until_response(self) -> None:
        while self.status is None and not self.app_done and self.read_error is None:
            if self.disconnected:  # the app's read of the body found the client gone
                raise ClientDisconnected()
            await self._wait_for_app()

    def _respond(self) -> Respond:
        connection = self.connection
        status = self.status
        if status is None:
            # Nothing to send of the app's: it failed or returned first (logged by the
            # app task), or the body could not be read. From here the app is told the
            # client is gone, and whatever it sends is dropped.
            self.disconnected = True
            self._wake_app()
            error = self.read_error
            connection.close_after = True
            if error is not None:
                return Respond(error.status_code, [_PLAIN, _CLOSE], reason(error.status_code))
            return Respond(500, [_PLAIN, _CLOSE], b"Internal Server Error")
        if self.reading:
            # A call of the app's still reads the body while another responds: the
            # connection must not read the next request under it, so it closes after.
            connection.close_after = True
        headers = self.headers
        for name, value in headers:
            if len(name) == 10 and name.lower() == b"connection" and b"close" in value.lower():
                connection.close_after = True  # the app's word: both parsers honour it
        if self.final:
            # The whole body is here already (the usual case): one write, head and body.
            chunks = self.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self.queued = 0
            return Respond(status, headers, body)
        return Respond(status, headers, b"", StreamBody(self._body(), True))

    async def _body(self) -> AsyncIterator[bytes]:
        """The response body as the app sends it; serves the app's reads meanwhile."""
        chunks = self.chunks
        while True:
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.queued = 0
                self._wake_app()  # if it waits for room to send more
                yield data
            elif self.final:
                return
            elif self.app_done or self.disconnected:
                # The app failed or returned mid-response: the client cannot be given a
                # complete response, so the connection is closed (as uvicorn does).
                raise anyio.BrokenResourceError("the ASGI app did not complete its response")
            elif self.wanted:
                await self._read()
                if self.read_error is not None:
                    raise anyio.BrokenResourceError("the request body could not be read")
            else:
                await self._wait_for_app()

    async def _read(self) -> None:
        """Read the next piece of the body for the app, on the connection's task.

        Asked by `receive` once the response has begun: the connection then reads
        between writing pieces of the response.
        """
        try:
            self.piece = await self._next_piece()
        finally:
            self.wanted = False
            self._wake_app()
        if self.disconnected and self.read_error is None:
            raise ClientDisconnected()

    async def _next_piece(self) -> tuple[bytes, bool] | None:
        """The next piece of the body as `(data, more)`; None if it cannot be read.

        What went wrong is noted for the connection: `read_error` (answered 4xx
        if the response has not begun) or `disconnected`.
        """
        connection = self.connection
        limit = self.host.max_body_size
        try:
            if self.whole:
                self.whole = False
                body = connection.read_body(limit)
                if type(body) is not bytes:  # bytes: the body came with the head
                    body = await body
                piece: Any = (body, False)
            else:
                piece = await connection.read_body(limit, READ_SIZE)
                if type(piece) is bytes:  # a body-less request: the reader says so at once
                    piece = (piece, False)
            self.received += len(piece[0])
            if self.received > limit:
                connection.close_after = True
                raise BodyTooLarge(limit)
        except ClientError as error:
            self.read_error = error
            self.disconnected = True
            self._wake_connection()
            return None
        except ClientDisconnected:
            self.disconnected = True
            self._wake_connection()
            return None
        return piece  # type: ignore[no-any-return]

    # -- the app's side ---------------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI `receive`: the next `http.request` piece, or `http.disconnect`.

        Until the response begins the connection only waits for it, so the body
        is read right here, on the app's task. Once it has begun, the connection
        writes it and reads for the app in between (it is asked, and waited for).
        """
        while self.reading:  # another call of the app's reads: after it
            await self._wait_for_connection()
        if self.complete or self.disconnected:
            return {"type": "http.disconnect"}
        if self.request_complete:
            await self._until_disconnect()
            return {"type": "http.disconnect"}
        if self.has_body is None:
            self.has_body = self.connection.request_has_body()
        if not self.has_body:
            self.request_complete = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if self.phase == WAITING:
            self.reading = True
            try:
                piece = await self._next_piece()
            finally:
                self.reading = False
                self._wake_app()
        else:
            self.wanted = True
            self._wake_connection()
            while self.wanted and not self.disconnected and not self.complete:
                await self._wait_for_connection()
            piece = self.piece
            self.piece = None
        if piece is None:
            return {"type": "http.disconnect"}
        data, more = piece
        if not more:
            self.request_complete = True
        return {"type": "http.request", "body": data, "more_body": more}

    async def app_send(self, message: Message) -> None:
        """ASGI `send`: `http.response.start`, then `http.response.body` messages."""
        kind = message["type"]
        if self.disconnected:
            return  # as uvicorn: a client that left gets nothing, the app is not stopped
        if self.status is None:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got {kind!r}."
                )
            status = message["status"]
            if type(status) is not int or not 100 <= status <= 999:
                raise RuntimeError(f"Invalid ASGI response status {status!r}.")
            # Copied: the connection adds its own (Date, Server); the app may reuse its list.
            self.headers = list(message.get("headers", ()))
            self.status = status
            if self._connection_waiter is not None:
                self._wake_connection()
            return
        if self.final:
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r} sent, after response already completed."
            )
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got {kind!r}.")
        body = message.get("body", b"")
        if body and not self.is_head:  # HEAD: the app's body is dropped, its headers kept
            self.chunks.append(bytes(body))
            self.queued += len(body)
        if not message.get("more_body", False):
            self.final = True
            if self._connection_waiter is not None:
                self._wake_connection()
            if not self.complete and not self.disconnected:
                # One turn of the loop is usually all the connection needs to write it.
                await (_NEXT_TURN if self.loop is not None else anyio.lowlevel.checkpoint())
                while not self.complete and not self.disconnected:
                    await self._wait_for_connection()
            return
        self._wake_connection()
        while self.queued > WRITE_HIGH_WATER and not self.disconnected:
            await self._wait_for_connection()

    async def _until_disconnect(self) -> None:
        """Wait (in `receive`) until the response is complete or the client has gone."""
        channel = self.connection.channel
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await channel.wait_closed()
                self.disconnected = True
                self._wake_app()

            group.start_soon(watch)
            while not self.complete and not self.disconnected:
                await self._wait_for_connection()
            group.cancel_scope.cancel()

    def app_finished(self) -> None:
        """The app task is over (returned, failed or cancelled)."""
        self.app_done = True
        if self._connection_waiter is not None:
            self._wake_connection()

    # -- waking each other ------------------------------------------------------------------

    async def _wait_for_app(self) -> None:
        loop = self.loop
        if loop is not None:
            waiter = self._connection_waiter = loop.create_future()
            await waiter
        else:
            event = self._connection_waiter = anyio.Event()
            await event.wait()

    async def _wait_for_connection(self) -> None:
        loop = self.loop
        if loop is not None:
            waiter = loop.create_future()
            self._app_waiters = [*self._app_waiters, waiter]
            await waiter
        else:
            event = anyio.Event()
            self._app_waiters = [*self._app_waiters, event]
            await event.wait()

    def _wake_connection(self) -> None:
        waiter = self._connection_waiter
        if waiter is not None:
            self._connection_waiter = None
            _wake(waiter)

    def _wake_app(self) -> None:
        waiters = self._app_waiters
        if waiters:
            self._app_waiters = ()
            for waiter in waiters:
                _wake(waiter)


class _NextTurn:
    """Awaited: let the asyncio loop run what is ready (the connection), then go on."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield  # a bare yield: the task is scheduled again at once, behind what is ready


_NEXT_TURN = _NextTurn()


def _wake(waiter: Any) -> None:
    """Set an asyncio future (unless done: cancelled with its waiter) or an anyio Event."""
    if isinstance(waiter, anyio.Event):
        waiter.set()
    elif not waiter.done():
        waiter.set_result(None)
