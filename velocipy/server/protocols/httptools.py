"""One client connection parsed by httptools (llhttp): the fast path of the built-in server.

Theory of operation. The phases (IDLE, HEAD, BUSY), deadlines and timeouts are
those of the h11 connection (`velocipy.server._connection`; the shared parts are
in `_connection_base`), and so are the
checks: `HeadScanner` watches the raw bytes of each head and finds where it
ends, `check_request` looks at the parsed fields. Only the parsing and the
response framing differ. A whole head that is plainly clean, as nearly every
one is, skips the scanner's Python checks: one regular-expression match in C
(`clean_head`) proves they all pass and reads the request line with them.

llhttp parses whatever it is fed and reports it through callbacks; it cannot
be paused between two messages. So the connection feeds it exactly one request
at a time: one head (where it ends is known from `HeadScanner`), then for a
Content-Length body exactly the body's bytes, for a chunked body the bytes up
to where `ChunkWatcher` sees it end. Bytes past them stay in `pending` for the
next request, as h11 keeps its trailing data. Should the parser ever be fed
bytes of a next request all the same, it stops there (`_NextMessage`) and the
connection closes after the current response rather than guess.

Responses are framed here, by h11's rules (RFC 9112 §6): a body is sent with
its Content-Length, or chunked to an HTTP/1.1 client, or delimited by closing
the connection to an HTTP/1.0 client; never a body for HEAD, 1xx, 204 and 304;
response header names must be tokens and values may not hold CR, LF or NUL
(a bad header is the app's mistake: 500, as on the h11 path).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import anyio
import anyio.lowlevel
from httptools import (
    HttpParserError,
    HttpParserInvalidMethodError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from velocipy.adapters._contexts import copy_context
from velocipy.adapters._drive import drive_async, iterate_async
from velocipy.core import (
    BodyTooLarge,
    ClientDisconnected,
    RequestHead,
    Respond,
)

from .._channel import Channel
from .._connection_base import (
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
from .._hardening import (
    KNOWN_METHODS,
    TOKEN,
    ChunkWatcher,
    HeadScanner,
    Rejected,
    check_request,
    check_target,
    clean_head,
)
from .._proxy import forwarded
from .._wire import error_response
from ._heads import CHUNKED, LENGTH, NO_BODY, response_head

if TYPE_CHECKING:
    from .._server import Server

_monotonic = time.monotonic

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_VERSIONS = {"1.1": b"1.1", "1.0": b"1.0"}
_VERSION_NAMES = {b"1.1": "1.1", b"1.0": "1.0"}
#: Every method a request can reach the app with (`check_request` refuses the rest), as
#: str: a look-up costs less than `decode("ascii")` per request.
_METHOD_NAMES = {method: method.decode("ascii") for method in KNOWN_METHODS}
_SLASH = ord("/")


class _NextMessage(Exception):
    """Bytes of a next request followed a chunked body in the same read (see the docstring)."""


class _HeadEnded(Exception):
    """The client closed the connection before a whole head came."""


class HttptoolsConnection(ConnectionBase):
    """Serves the requests of one socket in order until either side closes it."""

    __slots__ = (
        "parser",
        "scanner",
        "pending",
        "url",
        "headers",
        "message_done",
        "body",
        "body_size",
        "body_left",
        "body_fed",
        "upgrade",
        "head_done",
        "keep_alive",
        "chunks",
        "chunked",
    )

    def __init__(
        self,
        server: Server,
        channel: Channel,
        client: tuple[str, int] | None,
        local: tuple[str, int] | None,
    ) -> None:
        super().__init__(server, channel, client, local)
        self.parser = _new_parser(self)
        self.scanner = HeadScanner(server.config, "httptools")
        #: Bytes received past what the parser has been fed.
        self.pending = b""
        # What the parser reported of the current request.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.message_done = False
        self.body: list[bytes] = []
        self.body_size = 0
        #: Bytes of a Content-Length body not yet fed to the parser.
        self.body_left = 0
        self.body_fed = False
        self.upgrade = False
        self.head_done = False
        self.keep_alive = False
        #: Watches the declared chunk sizes of a chunked body (None otherwise).
        self.chunks: ChunkWatcher | None = None
        self.chunked = False

    # -- llhttp's callbacks ----------------------------------------------------------------
    # The request line is not taken from llhttp (`on_url`, `get_method`): `clean_head`
    # reads it with the checks, or `_parse_head` from the head llhttp accepted.

    def on_message_begin(self) -> None:
        if self.message_done:  # a next message in the same bytes (see the module docstring)
            raise _NextMessage()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_done:
            # A trailer field of a chunked body (llhttp reports them here too): dropped,
            # as on the h11 path. Kept, it would join the request's headers once the
            # body was read (a field a proxy strips from heads can ride in a trailer),
            # and a flood of them would grow the list without bound.
            return
        # h11 strips trailing whitespace from values (llhttp only leading): so do we. Plain
        # `rstrip()` strips SP and HTAB here, as the other ASCII whitespace (CR, LF, VT,
        # FF) cannot be in a value llhttp accepts, and costs less than naming them.
        self.headers.append((name.lower(), value.rstrip()))

    def on_headers_complete(self) -> None:
        self.head_done = True
        # Asked now: llhttp forgets the request's Connection header once the message ends.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.body_size += len(body)

    def on_message_complete(self) -> None:
        self.message_done = True

    # -- the connection ----------------------------------------------------------------------

    async def _serve(self) -> bool:
        """Serve requests; True if one left a value in the context (see `ConnectionBase.run`)."""
        channel = self.channel
        server = self.server
        config = server.config
        scanner = self.scanner
        match_clean = clean_head(config)
        max_head = config.max_head_size
        header_timeout = config.header_timeout
        idle_timeout = header_timeout if self.fresh else config.keepalive_timeout
        while True:
            # -- read a head ---------------------------------------------------------------
            pending = self.pending
            self.message_done = self.body_fed = self.head_done = self.upgrade = False
            self.headers = []
            self.body = []
            self.body_size = 0
            try:
                if pending:
                    # A pipelined request: give other connections a turn before serving it.
                    await anyio.lowlevel.checkpoint()
                    self.phase = HEAD
                    self.deadline = _monotonic() + header_timeout
                else:
                    if server.shutting_down:
                        if not self.fresh:
                            return False
                        idle_timeout = min(idle_timeout, FIRST_REQUEST_GRACE)
                    self.phase = IDLE
                    self.deadline = _monotonic() + idle_timeout
                    try:
                        pending = await channel.receive()
                    except anyio.EndOfStream:
                        return False
                clean = match_clean(pending)
                if clean is not None and clean.end() <= max_head:
                    # The usual case: a whole, plainly clean head (see `clean_head`).
                    self.phase = BUSY
                    self.deadline = None
                    head = clean[0]
                    self.pending = pending[len(head) :]
                    method, target, version = clean.groups()
                    try:
                        self.parser.feed_data(head)
                    except (HttpParserError, HttpParserUpgrade) as error:
                        self._refused(head, error)
                    self.url = target
                    if target[0] != _SLASH:
                        check_target(target)
                    length, self.chunked = check_request(self.headers, version, method)
                else:
                    method, version, length = await self._read_head(pending, scanner)
                self.content_length = length
                self.body_left = length or 0
                self.chunks = ChunkWatcher() if length is None and self.chunked else None
                if length or self.chunked:
                    self.rate_window_start = 0.0  # a new body: its rate is measured afresh
            except Rejected as rejected:
                await self._reject(rejected.status)
                return False
            except _HeadEnded:
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
            if not await self._answer(method, version):
                return False
            if not self.message_done:
                return False
            if not self.shared_context:
                return True  # a request left a value in this context: on in a fresh one

    async def _read_head(
        self, pending: bytes, scanner: HeadScanner
    ) -> tuple[bytes, bytes, int | None]:
        """The general way to a head: read until `scanner` sees it whole, then parse it.

        For every head `clean_head` does not match at once: one that comes in pieces,
        or that the scanner must look at closely (and perhaps refuse). Raises
        `_HeadEnded` if the client closes first.
        """
        end = scanner.scan(pending)
        while end < 0:
            if self.phase == IDLE:
                # Part of a head: the rest must follow within the header timeout.
                # (A whole head goes straight on: nothing waits before BUSY.)
                self.phase = HEAD
                self.deadline = _monotonic() + self.server.config.header_timeout
            try:
                data = await self.channel.receive()
            except anyio.EndOfStream:
                raise _HeadEnded() from None
            pending += data
            end = scanner.feed(pending)
        self.phase = BUSY
        self.deadline = None
        head, self.pending = pending[:end], pending[end:]
        return self._parse_head(head, scanner.line_end)

    def _parse_head(
        self, head: bytes, line_end: int, method: bytes | None = None
    ) -> tuple[bytes, bytes, int | None]:
        """Feed one whole head to llhttp and check it: (method, version, Content-Length).

        Raises `Rejected` with the status both parsers give (see `_hardening`).
        `line_end`: where the request line ends. `method`: the real method, when
        `head` starts with a stand-in llhttp knows.
        """
        parser = self.parser
        try:
            parser.feed_data(head)
        except (HttpParserError, HttpParserUpgrade) as error:
            self._refused(head, error, method)
        # The version as llhttp read it, taken from the end of the request line that it
        # has just accepted (`get_http_version()` formats a new string on every call).
        ending = head[line_end - 9 : line_end]
        if ending == b" HTTP/1.1":
            version = b"1.1"
        elif ending == b" HTTP/1.0":
            version = b"1.0"
        else:
            version = self._version_bytes()
        if method is None:
            method = parser.get_method()
        # The target: between the request line's first and last space (llhttp took it,
        # and the scanner has refused two spaces in a row); no version: up to the end.
        start = head.find(b" ") + 1
        stop = head.rfind(b" ", start, line_end)
        self.url = url = head[start : stop if stop >= 0 else line_end]
        if not url or url[0] != _SLASH:
            check_target(url)
        length, self.chunked = check_request(self.headers, version, method)
        return method, version, length

    def _refused(self, head: bytes, error: Exception, method: bytes | None = None) -> None:
        """What llhttp raising `error` on `head` means: an Upgrade is noted, else `Rejected`."""
        if type(error) is HttpParserUpgrade:
            # Upgrade or CONNECT: answered as a plain request, then closed.
            self.upgrade = True
            return
        if type(error) is HttpParserInvalidMethodError:
            # llhttp knows a fixed list of methods and stops at any other. Our rule is
            # to answer 501 for an unknown method only once the rest of the head passed
            # every check, as on the h11 path: so parse the rest with a known method.
            unknown = head[: head.find(b" ")]
            if method is not None or not TOKEN.fullmatch(unknown):
                raise Rejected(400, "malformed request line") from None
            self.parser = _new_parser(self)
            self.headers, self.head_done = [], False
            stand_in = b"GET" + head[len(unknown) :]
            self._parse_head(stand_in, stand_in.find(b"\r\n"), unknown)
            raise Rejected(501, "unknown method") from None  # check_request raised already
        if self.head_done:
            # The fields were read: our own checks answer first (e.g. 501 for an
            # unknown Transfer-Encoding, which llhttp calls plain invalid).
            check_request(self.headers, self._version_bytes(), method or self.parser.get_method())
        raise Rejected(400, "malformed request head") from None

    def _version_bytes(self) -> bytes:
        version = self.parser.get_http_version()
        return _VERSIONS.get(version) or version.encode("ascii")

    def _request_head(self, method: str, version: bytes) -> RequestHead:
        """The request as the core sees it (the ASGI host's connection adds to it)."""
        target = self.url
        if not target or target[0] != _SLASH:
            target = check_target(target)
        raw_path, _, query = target.partition(b"?")  # one call (`find` parses its arguments)
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        scheme, client = self.scheme, self.client
        if self.proxied is not None:  # a trusted proxy's word on who the client is
            client, scheme = forwarded(self.headers, self.proxied, client, scheme)
        return RequestHead(
            method,
            path,
            query,
            self.headers,
            _VERSION_NAMES.get(version) or version.decode("ascii"),
            scheme,
            client,
            self.local,
            self.server.root_path,
        )

    async def _answer(self, raw_method: bytes, version: bytes) -> bool:
        """Serve one request; return whether the connection may serve another."""
        server = self.server
        began = _monotonic() if server.access_log else 0.0
        if server.requests_left is not None:
            server.count_request()
        self.close_after = self.upgrade
        method = _METHOD_NAMES[raw_method]
        head = self._request_head(method, version)
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
            logger.exception("Serving %s %s failed", method, head.path)
            await self._reject(500)
            return False
        if type(effect) is not Respond:
            logger.error("The exchange for %s %s ended without a response", method, head.path)
            await self._reject(500)
            return False
        respond: Respond = effect
        close = self.close_after or server.shutting_down or version != b"1.1" or not self.keep_alive
        if not close and not self.message_done:
            close = not self._can_drain()
        status = respond.status
        delivered = False
        started = False
        try:
            head_bytes, framing, declared, close = response_head(
                status, respond.headers, method == "HEAD", version, close, server
            )
            started = True
            if respond.stream is None:
                body = respond.body
                if body:
                    if framing == CHUNKED:
                        head_bytes += b"%x\r\n%b\r\n" % (len(body), body)
                    elif framing == NO_BODY or (framing == LENGTH and len(body) != declared):
                        raise ValueError("the body does not match the response's framing")
                    else:
                        head_bytes += body
                elif framing == LENGTH and declared:
                    raise ValueError("the body does not match the response's Content-Length")
                if framing == CHUNKED:
                    head_bytes += _LAST_CHUNK
                if self.channel.write(head_bytes):
                    await self.channel.flush()
            else:
                await self._stream(respond, head_bytes, framing, declared)
            delivered = True
        except NETWORK_ERRORS:
            pass
        except Exception:
            # The app's headers are invalid, or its stream failed: nothing a client did.
            logger.exception("Could not send the response for %s %s", method, head.path)
            if not started:
                status = 500
                with anyio.move_on_after(1):
                    await self.channel.send(error_response(500, server.server_header))
        if server.access_log:
            self._log_access(method, self.url, head.http_version, status, began)
        self._finish(exchange, delivered)
        if not delivered or close:
            return False
        clean = self.context  # did this request leave a value? (`CleanContext.changed`)
        if copy_context() != clean.clean or (clean.watched and clean.changed()):
            self.shared_context = False  # it did: `_serve` returns after it, to go on afresh
        if not self.message_done:
            return await self._drain()
        return True

    async def _stream(
        self, respond: Respond, head_bytes: bytes, framing: int, declared: int
    ) -> None:
        send = self.channel.send
        assert respond.stream is not None
        await send(head_bytes)
        sent = 0
        async for chunk in iterate_async(respond.stream, self.run_sync):
            if not chunk:
                continue
            if framing == CHUNKED:
                await send(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            elif framing == NO_BODY:
                continue  # HEAD, 204, 304: the stream is run but nothing of it is sent
            else:
                sent += len(chunk)
                if framing == LENGTH and sent > declared:
                    raise ValueError("the stream sent more than its Content-Length")
                await send(chunk)
        if framing == CHUNKED:
            await send(_LAST_CHUNK)
        elif framing == LENGTH and sent != declared:
            raise ValueError("the stream sent less than its Content-Length")

    def _expects_continue(self) -> bool:
        """Whether the client waits for `100 Continue` before sending its body (as h11 decides)."""
        if self.body_fed or self._version_bytes() != b"1.1":
            return False
        for name, value in self.headers:
            if name == b"expect" and value.strip().lower() == b"100-continue":
                return True
        return False

    def _read_body(self, limit: int, size: int = 0) -> Any:
        """The `ReadBody` effect: the whole body, within the limits, answering 100-continue.

        With `size`, the `ReadChunk` effect: the next piece as `(data, more)`. A body
        that came whole with its head is returned at once, as bytes (`drive_async`
        takes that: no coroutine to make and resume); anything else is a coroutine.
        """
        server = self.server
        if server.max_body_size is not None and server.max_body_size < limit:
            limit = server.max_body_size
        length = self.content_length
        if length is not None:
            if length > limit:
                self.close_after = True
                raise BodyTooLarge(limit)
            pending = self.pending
            if length and not size and not self.body_fed and len(pending) >= length:
                # The usual case: the whole body came with the head. No 100-continue to
                # send (the client did not wait for it), no read to wait for.
                self.pending = b""
                if len(pending) == length:
                    # Exactly the body, as nearly always: `_feed_body` inlined (a call
                    # less per request), with nothing to keep for the next request.
                    self.body_fed = True
                    self.body_left = 0
                    try:
                        self.parser.feed_data(pending)
                    except HttpParserError:
                        self.close_after = True
                        if not self.message_done:
                            raise BadBodyFraming("Malformed request body framing") from None
                else:
                    self._feed_body(pending)
                body = self.body
                return body[0] if len(body) == 1 else b"".join(body)
        return self._read_body_rest(limit, size)

    async def _read_body_rest(self, limit: int, size: int) -> Any:
        """`_read_body` where bytes have to be waited for (or 100-continue sent)."""
        if not self.message_done and self._expects_continue():
            try:
                await self.channel.send(_CONTINUE)
            except NETWORK_ERRORS:
                raise ClientDisconnected() from None
        if size:
            return await self._read_piece(limit)
        while not self.message_done:
            await self._next_body_bytes(limit)
        if self.body_size > limit:
            self.close_after = True
            raise BodyTooLarge(limit)
        body = self.body
        return body[0] if len(body) == 1 else b"".join(body)

    async def _read_piece(self, limit: int) -> tuple[bytes, bool]:
        """The next piece of the body as `(data, more)`, counted against `limit` (the
        server's cap, when lower than the app's; the core counts against the app's)."""
        while True:
            body = self.body
            if body:
                self.body = []
                return (body[0] if len(body) == 1 else b"".join(body)), True
            if self.message_done:
                return b"", False
            await self._next_body_bytes(limit)

    async def _next_body_bytes(self, limit: int) -> None:
        """Feed the parser the next bytes of the body, checking the limit and the chunk sizes."""
        data = self.pending
        if data:
            self.pending = b""
        else:
            data = await self._receive_body_bytes()
        self._feed_body(data)
        chunks = self.chunks
        if chunks is not None:
            if chunks.absurd:
                self.close_after = True
                raise BadBodyFraming("Chunk size too large")
            if chunks.declared > limit:
                self.close_after = True
                raise BodyTooLarge(limit)
        if self.body_size > limit:
            self.close_after = True
            raise BodyTooLarge(limit)

    def _feed_body(self, data: bytes) -> None:
        """Feed body bytes to the parser; bytes past the body stay pending for the next request."""
        self.body_fed = True
        if self.content_length is not None:
            left = self.body_left
            if len(data) > left:
                self.pending = data[left:] + self.pending
                data = data[:left]
            self.body_left = left - len(data)
        elif self.chunks is not None:
            end = self.chunks.feed(data)
            if 0 <= end < len(data):
                self.pending = data[end:] + self.pending
                data = data[:end]
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            self.close_after = True
            if not self.message_done:
                raise BadBodyFraming("Malformed request body framing") from None
            # else: a next request followed a body whose end the watcher missed: close

    def _can_drain(self) -> bool:
        """Whether the unread rest of the body is small enough to read and discard."""
        if self.content_length is None or self._expects_continue():
            return False
        return self.content_length <= MAX_DRAIN

    async def _drain(self) -> bool:
        """Read and discard the unread body of the request just answered; False to close."""
        with anyio.move_on_after(self.server.config.body_timeout):
            while not self.message_done:
                data = self.pending
                if data:
                    self.pending = b""
                else:
                    try:
                        data = await self.channel.receive()
                    except NETWORK_ERRORS:
                        return False
                try:
                    self._feed_body(data)
                except BadBodyFraming:
                    return False
                self.body = []
            return not self.close_after
        return False


def _new_parser(connection: HttptoolsConnection) -> HttpRequestParser:
    """A request parser calling back `connection`, with llhttp's framing rules left to ours.

    With Transfer-Encoding and Content-Length both present, or an unknown coding,
    llhttp stops in the middle of the head; relaxed, it reads the head to its end
    and `check_request` refuses it with the answer h11's path gives (501 or 400).
    Such a request never gets as far as its body.
    """
    parser = HttpRequestParser(connection)
    parser.set_dangerous_leniencies(lenient_chunked_length=True, lenient_transfer_encoding=True)
    return parser
