"""One client connection: h11 over a socket channel, its requests served one after another.

Theory of operation. A connection loops over three phases:

- `IDLE`: waiting for the first byte of the next request (keep-alive idle time,
  or the header timeout on a fresh connection);
- `HEAD`: bytes of a head have arrived; the whole head must follow within the
  header timeout. `HeadScanner` checks the raw bytes as they come; h11 parses
  the head once it is complete; `check_request` refuses what h11 lets through;
- `BUSY`: the app is running, the body being read or the response being written.

Timeouts are not cancel scopes per read (too costly on the hot path): the
connection records a `deadline`, and the server's sweeper calls `expire()` on
connections past it. Only IDLE and HEAD connections carry a deadline; body
reads use their own per-read timeout. Pipelined requests need little: h11 keeps
bytes past the current request, and the next loop starts from them after
letting other connections have a turn.

After the response's last byte is written the exchange is resumed; if
background tasks follow, the server drives them in its own task group and this
connection goes straight on to the next request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio
import anyio.lowlevel
import h11

from velocipy.adapters._contexts import copy_context
from velocipy.adapters._drive import drive_async, iterate_async
from velocipy.core import (
    BodyTooLarge,
    ClientDisconnected,
    RequestHead,
    Respond,
)

from ._channel import Channel
from ._connection_base import (
    BUSY,
    FIRST_REQUEST_GRACE,
    HEAD,
    IDLE,
    MAX_DRAIN,
    NETWORK_ERRORS,
    BadBodyFraming,
    ConnectionBase,
    logger,
)
from ._h11_response import response_event, server_lines
from ._hardening import (
    KNOWN_METHODS,
    ChunkOverLimit,
    HeadScanner,
    Rejected,
    check_chunk,
    check_request,
    check_target,
)
from ._proxy import forwarded
from ._wire import error_response

if TYPE_CHECKING:
    from ._server import Server

_monotonic = time.monotonic
_Request = h11.Request
_Data = h11.Data
_EndOfMessage = h11.EndOfMessage
_NEED_DATA = h11.NEED_DATA
_DONE = h11.DONE
_SEND_BODY = h11.SEND_BODY
#: h11 events are immutable: one EndOfMessage serves every response.
_END = h11.EndOfMessage()
_LocalProtocolError = h11.LocalProtocolError
_SLASH = ord("/")
#: Every method a request can reach the app with, as str: a look-up costs less than
#: `decode("ascii")` per request.
_METHOD_NAMES = {method: method.decode("ascii") for method in KNOWN_METHODS}
_VERSION_NAMES = {b"1.1": "1.1", b"1.0": "1.0"}

if TYPE_CHECKING:

    def _send(conn: h11.Connection, event: h11.Event) -> list[bytes]:
        """h11's `send_with_data_passthrough`, never None here (no ConnectionClosed is sent)."""
        ...

else:
    _send = h11.Connection.send_with_data_passthrough


class HTTPConnection(ConnectionBase):
    """Serves the requests of one socket in order until either side closes it."""

    __slots__ = ("h11", "scanner", "body_received", "lines")

    def __init__(
        self,
        server: Server,
        channel: Channel,
        client: tuple[str, int] | None,
        local: tuple[str, int] | None,
    ) -> None:
        super().__init__(server, channel, client, local)
        config = server.config
        # h11's own cap on incomplete events stays as a backstop behind HeadScanner's.
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_head_size + 4)
        self.scanner = HeadScanner(config)
        #: Body bytes of the current request handed out in pieces (`ReadChunk`).
        self.body_received = 0
        #: The server's own response lines, checked by h11 once (see `_h11_response`).
        self.lines = server_lines(server.default_headers, server.date_header)

    async def _serve(self) -> bool:
        """Serve requests; True if one left a value in the context (see `ConnectionBase.run`)."""
        conn = self.h11
        channel = self.channel
        server = self.server
        config = server.config
        scanner = self.scanner
        header_timeout = config.header_timeout
        idle_timeout = header_timeout if self.fresh else config.keepalive_timeout
        while True:
            # -- read a head ---------------------------------------------------------------
            pending: bytes = conn.trailing_data[0]
            try:
                if pending:
                    # A pipelined request: give other connections a turn before serving it.
                    await anyio.lowlevel.checkpoint()
                    self.phase = HEAD
                    self.deadline = _monotonic() + header_timeout
                    end = scanner.scan(pending)
                else:
                    if server.shutting_down:
                        if not self.fresh:
                            return False
                        idle_timeout = min(idle_timeout, FIRST_REQUEST_GRACE)
                    self.phase = IDLE
                    self.deadline = _monotonic() + idle_timeout
                    end = -1
                while end < 0:
                    try:
                        data = await channel.receive()
                    except anyio.EndOfStream:
                        return False
                    conn.receive_data(data)
                    if pending:
                        pending += data
                        end = scanner.feed(pending)
                    else:  # the first bytes of this head
                        pending = data
                        end = scanner.scan(pending)
                    if end < 0 and self.phase == IDLE:
                        # Part of a head: the rest must follow within the header timeout.
                        # (A whole head goes straight on: nothing waits before BUSY.)
                        self.phase = HEAD
                        self.deadline = _monotonic() + header_timeout
                self.phase = BUSY
                self.deadline = None
                event = conn.next_event()
                if type(event) is not _Request:
                    raise Rejected(400, "incomplete request head")
                headers = _header_list(event.headers)
                if event.target[0] != _SLASH:  # before the method: llhttp's order
                    check_target(event.target)
                length, chunked = check_request(headers, event.http_version, event.method)
                self.content_length = length
                self.body_received = 0
                if not chunked and not length:
                    conn.next_event()  # the EndOfMessage of a body-less request, already here
                else:
                    self.rate_window_start = 0.0  # a new body: its rate is measured afresh
            except Rejected as rejected:
                await self._reject(rejected.status)
                return False
            except h11.RemoteProtocolError as error:
                await self._reject(error.error_status_hint)
                return False
            idle_timeout = config.keepalive_timeout
            self.fresh = False
            if server.paused:
                # Too many background tasks in flight: this request waits, unread past
                # its head, until some finish (a stop closes it like an idle one).
                self.phase = IDLE
                await server.wait_for_room()
                self.phase = BUSY
            # -- answer it -------------------------------------------------------------------
            if not await self._answer(event, headers):
                return False
            try:
                conn.start_next_cycle()
            except _LocalProtocolError:  # not both DONE: h11 says MUST_CLOSE (keep-alive off)
                return False
            if not self.shared_context:
                return True  # a request left a value in this context: on in a fresh one

    def _request_head(self, event: h11.Request, headers: list[tuple[bytes, bytes]]) -> RequestHead:
        target = event.target
        if target[0] != _SLASH:  # h11 never gives an empty target
            target = check_target(target)
        raw_path, _, query = target.partition(b"?")  # one call (`find` parses its arguments)
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scheme, client = self.scheme, self.client
        if self.proxied is not None:  # a trusted proxy's word on who the client is
            client, scheme = forwarded(headers, self.proxied, client, scheme)
        version = event.http_version
        return RequestHead(
            _METHOD_NAMES[event.method],  # `check_request` let only these through
            path,
            query,
            headers,
            _VERSION_NAMES.get(version) or version.decode("ascii"),
            scheme,
            client,
            self.local,
            self.server.root_path,
        )

    async def _answer(self, event: h11.Request, headers: list[tuple[bytes, bytes]]) -> bool:
        """Serve one request; return whether the connection may serve another."""
        server = self.server
        began = _monotonic() if server.access_log else 0.0
        if server.requests_left is not None:
            server.count_request()
        conn = self.h11
        self.close_after = False
        head = self._request_head(event, headers)
        exchange = server.app.exchange(head)
        # The app runs in the connection's context: a request that leaves a value in it
        # ends this context's turn (see `ConnectionBase.run`), checked below.
        try:
            effect = await drive_async(
                exchange, exchange.start(), read_body=self.read_body, run_sync=self.run_sync
            )
        except ClientDisconnected:
            return False
        except Exception:  # a bug below us: answer 500 without details, keep serving others
            logger.exception("Serving %s %s failed", head.method, head.path)
            await self._reject(500)
            return False
        if type(effect) is not Respond:
            logger.error("The exchange for %s %s ended without a response", head.method, head.path)
            await self._reject(500)
            return False
        respond: Respond = effect
        close = self.close_after or server.shutting_down
        # Read once (a property costs about as much as a call): whether the body is unread.
        unread = conn.their_state is not _DONE
        if unread and not close:
            close = not self._can_drain()
        status = respond.status
        delivered = False
        started = False
        try:
            # Head, body and end in one write; `send_with_data_passthrough` is h11's `send`
            # without the joining of each event's pieces (the body is passed as it is).
            pieces = _send(conn, response_event(status, respond.headers, self.lines, close))
            started = True
            if respond.stream is None:
                if respond.body:
                    pieces += _send(conn, _Data(data=respond.body))
                pieces += _send(conn, _END)
                channel = self.channel
                if channel.write(b"".join(pieces)):
                    await channel.flush()
            else:
                await self._stream(respond, b"".join(pieces))
            delivered = True
        except NETWORK_ERRORS:
            pass
        except Exception:
            # The app's headers are invalid, or its stream failed: nothing a client did.
            logger.exception("Could not send the response for %s %s", head.method, head.path)
            if not started:
                status = 500
                with anyio.move_on_after(1):
                    await self.channel.send(error_response(500, server.server_header))
        if server.access_log:
            self._log_access(head.method, event.target, head.http_version, status, began)
        self._finish(exchange, delivered)
        if not delivered or close:
            return False
        clean = self.context  # did this request leave a value? (`CleanContext.changed`)
        if copy_context() != clean.clean or (clean.watched and clean.changed()):
            self.shared_context = False  # it did: `_serve` returns after it, to go on afresh
        # A body read to its end stays so: only an unread one is looked at again (`_serve`
        # finds out from h11 whether the connection can be reused).
        if unread and conn.their_state is not _DONE:
            if conn.our_state is not _DONE:
                # Keep-alive is off (`Connection: close`, HTTP/1.0): h11 says MUST_CLOSE.
                # Reading on for the next event would wait for a body timeout instead.
                return False
            return await self._drain()
        return True

    async def _stream(self, respond: Respond, head_bytes: bytes) -> None:
        conn = self.h11
        send = self.channel.send
        assert respond.stream is not None
        await send(head_bytes)
        async for chunk in iterate_async(respond.stream, self.run_sync):
            if chunk:
                await send(conn.send(_Data(data=chunk)))
        await send(conn.send(_END))

    async def _read_body(self, limit: int, size: int = 0) -> Any:
        """The `ReadBody` effect: the whole body, within the limits, answering 100-continue.

        With `size`, the `ReadChunk` effect: the next piece as `(data, more)`.
        """
        conn = self.h11
        state = conn.their_state  # read once: nothing below changes it before the reads
        if state is _DONE:
            # A body-less request: its EndOfMessage was taken with the head. `ReadChunk`
            # (a `size`) is answered `(data, more)`, as the httptools connection does.
            return (b"", False) if size else b""
        server = self.server
        if server.max_body_size is not None and server.max_body_size < limit:
            # The server's own cap holds for streamed (multipart) bodies too: a declared
            # length past it is refused here; the core counts the pieces against its limit.
            limit = server.max_body_size
        if self.content_length is not None and self.content_length > limit:
            self.close_after = True
            raise BodyTooLarge(limit)
        if state is not _SEND_BODY:  # no body (none announced, Content-Length: 0)
            return (b"", False) if size else b""
        if conn.client_is_waiting_for_100_continue:  # we are the server: the client waits
            informational = h11.InformationalResponse(
                status_code=100, headers=[], reason=b"Continue"
            )
            await self._send_or_disconnect(conn.send(informational))
        if size:
            return await self._read_piece(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                self.close_after = True
                raise BadBodyFraming("Malformed request body framing") from None
            kind = type(event)
            if kind is _Data:
                data: bytes = event.data  # type: ignore[union-attr]
                size += len(data)
                if size > limit:
                    self.close_after = True
                    raise BodyTooLarge(limit)
                chunks.append(data)
            elif kind is _EndOfMessage:
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
            elif event is _NEED_DATA:
                if self.content_length is None:
                    try:
                        check_chunk(conn, limit - size)
                    except Rejected:
                        self.close_after = True
                        raise BadBodyFraming("Chunk size too large") from None
                    except ChunkOverLimit:
                        self.close_after = True
                        raise BodyTooLarge(limit) from None
                conn.receive_data(await self._receive_body_bytes())
            else:  # ConnectionClosed, PAUSED: the body ended early
                raise ClientDisconnected()

    async def _read_piece(self, limit: int) -> tuple[bytes, bool]:
        """The next piece of the body as `(data, more)`; h11 keeps where it stands.

        The pieces are counted against `limit` (the server's cap, when lower than the
        app's): the core counts them against the app's own limit only.
        """
        conn = self.h11
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                self.close_after = True
                raise BadBodyFraming("Malformed request body framing") from None
            kind = type(event)
            if kind is _Data:
                data: bytes = event.data  # type: ignore[union-attr]
                self.body_received += len(data)
                if self.body_received > limit:
                    self.close_after = True
                    raise BodyTooLarge(limit)
                return data, True
            if kind is _EndOfMessage:
                return b"", False
            if event is _NEED_DATA:
                if self.content_length is None:
                    try:
                        check_chunk(conn, limit - self.body_received)
                    except Rejected:
                        self.close_after = True
                        raise BadBodyFraming("Chunk size too large") from None
                    except ChunkOverLimit:
                        self.close_after = True
                        raise BodyTooLarge(limit) from None
                conn.receive_data(await self._receive_body_bytes())
            else:  # ConnectionClosed, PAUSED: the body ended early
                raise ClientDisconnected()

    async def _send_or_disconnect(self, data: bytes) -> None:
        try:
            await self.channel.send(data)
        except NETWORK_ERRORS:
            raise ClientDisconnected() from None

    def _can_drain(self) -> bool:
        """Whether the unread rest of the body is small enough to read and discard."""
        conn = self.h11
        if conn.they_are_waiting_for_100_continue or self.content_length is None:
            return False
        return self.content_length <= MAX_DRAIN

    async def _drain(self) -> bool:
        """Read and discard the unread body of the request just answered; False to close."""
        conn = self.h11
        with anyio.move_on_after(self.server.config.body_timeout):
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    return False
                if type(event) is _EndOfMessage:
                    return True
                if event is _NEED_DATA:
                    try:
                        conn.receive_data(await self.channel.receive())
                    except NETWORK_ERRORS:
                        return False
                elif type(event) is not _Data:
                    return False
        return False


def _header_list(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The request's (lower-case name, value) pairs as a list.

    h11's `Headers` is a `Sequence` whose generic iteration costs a method call
    per field; its `_full_items` already hold every field as (raw name, name,
    value). If that private attribute ever goes away, iterate the public way.
    """
    items = getattr(headers, "_full_items", None)
    if type(items) is list:
        return [(name, value) for _, name, value in items]
    return list(headers)
