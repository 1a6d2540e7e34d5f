"""A connection's bytes in and out: our own asyncio protocol, or anyio's socket stream.

`open_channel(sock, write_timeout)` wraps an accepted socket as what
`HTTPConnection` reads requests from and writes responses to. Two kinds, with
the same coroutines and errors (`receive` raises `anyio.EndOfStream` once
the peer has finished sending; `receive` and `send` raise
`anyio.BrokenResourceError` once the connection is lost; `wait_closed`, used
for an ASGI app's `http.disconnect`, returns once the peer is gone):

- `TransportChannel`, on asyncio (plain or uvloop): an `asyncio.Protocol` of our
  own on the socket's transport. anyio's socket stream pauses the transport's
  reading after every `receive` and resumes it before the next (two
  `epoll_ctl` calls per request on a keep-alive connection), and yields to the
  event loop after every `send` even when the kernel took all the bytes at
  once; under 50 busy connections those round trips cost a third of the
  throughput. Here reading stays on and is paused only when more than
  `READ_HIGH_WATER` bytes wait unread (flow control for a client that sends
  faster than the app reads), and `send` waits only when the kernel did not
  take everything.
- `StreamChannel` elsewhere (trio): anyio's socket stream as it is.

On asyncio, a response written whole (`write`) that is no larger than
`BATCHED_WRITE_LIMIT` is handed to the kernel at the end of the event loop's
turn, together with every other response made in that turn (`WriteBatch`),
not at once. Each write that wakes a client waiting to read costs the writer
that wake-up: on loopback (a client or proxy on the same host) the kernel runs
the receiving side's TCP work inside the writer's `write` call, and waking a
reader on another CPU is an interrupt, which on a virtual machine exits to
the hypervisor. Written back to back, the responses of one turn wake such a
client once instead of once each: measured under 50 busy connections on 2
cores, the server's CPU per `POST /signup` fell from ~54 us to ~34 us, most
of the difference in that one wake-up (`perf record`; bench/RESULTS.md). A
response waits at most for the rest of the turn it was made in, and what its
request does after it (its background tasks, its dependencies' cleanup) waits
with it (`after_written`): no task starts before its response has left the
process, as on every other driver. Larger
responses, and any write while the kernel is not taking bytes, go out at once
(and are waited for, within the write timeout, before the connection reads its
next request); so does what is batched when the connection closes. The rare
batched response the kernel does not take whole at the end of the turn waits in
the transport: the connection's next write waits for it first, and so does its
close (within the write timeout).

Both stay fair to other connections: a `receive` that finds bytes already
waiting still yields to the event loop once, as anyio's does. Both bound how
long a `send` may wait for a peer that stopped reading (`write_timeout`): past
it the connection is dropped and `send` raises `anyio.BrokenResourceError`,
so a client that never reads cannot hold a connection and its response forever.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSStream

logger = logging.getLogger("velocipy.server")

#: Unread bytes at which reading from the socket pauses until the connection catches up.
READ_HIGH_WATER = 256 * 1024
#: The largest response `write` leaves for the end of the loop's turn: what a fresh
#: connection's send buffer takes at once on Linux (`tcp_wmem`'s default), so that a
#: batched write practically never leaves bytes behind for a connection gone idle.
BATCHED_WRITE_LIMIT = 16 * 1024


class Channel(Protocol):
    """What a connection needs from its socket."""

    async def receive(self) -> bytes:
        """The next bytes from the peer (waiting for them if none are buffered)."""
        ...

    async def send(self, data: bytes) -> None:
        """Write `data`; return once the kernel has taken it (or buffered, under back-pressure)."""
        ...

    def write(self, data: bytes) -> bool:
        """Start writing `data`; True if the caller must then `await flush()` to finish.

        For the last write of a response: `send` without a coroutine. False means
        nothing is left for the caller to wait for: the kernel took everything, or
        (a small response on asyncio) the bytes go to the kernel at the end of this
        turn of the loop (see `after_written`).
        """
        ...

    def after_written(self, then: Callable[[Any, bool], None], argument: Any) -> bool:
        """If `write` left bytes for the end of this turn, call `then(argument, delivered)`
        in the current context once they are handed to the kernel (`delivered` is
        False if the connection was lost first) and return True; else return False."""
        ...

    async def flush(self) -> None:
        """Finish what `write` started (as `send` would have)."""
        ...

    async def aclose(self) -> None:
        """Close the connection at once; never raises."""
        ...

    async def wait_closed(self) -> None:
        """Return once the peer has closed or reset the connection (no bytes are consumed)."""
        ...


class WriteBatch(list["TransportChannel"]):
    """The channels whose small responses wait for the end of this turn of an asyncio
    loop, to be handed to the kernel together (see the module docstring), and what
    waits for them to be (`after`). One per serving loop; `TransportChannel.write` adds
    to it and asks for one `flush` per turn.
    """

    __slots__ = ("loop", "after")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        #: `(context, channel, then, argument)`: `then(argument, delivered)` is called in
        #: `context` once `channel`'s batched bytes are written (`after_written`).
        self.after: list[tuple[contextvars.Context, TransportChannel, Any, Any]] = []

    def flush(self) -> None:
        """Write every channel's unsent bytes in the order they were written; then call
        what waited for them."""
        channels = self[:]
        self.clear()
        try:
            for channel in channels:
                # `channel.write_unsent()`, inlined (see there): this runs once per response.
                data = channel._unsent
                if data is None:
                    continue  # written already (by a send, a large write or a close)
                channel._unsent = None
                transport = channel._transport
                if channel._lost or transport.is_closing():
                    continue  # gone meanwhile: `after` hears it was not delivered
                try:
                    transport.write(data)
                except Exception:  # pragma: no cover - an open transport takes bytes
                    transport.abort()  # and the other channels of the batch are still written
                    continue
                if channel._writing_paused:
                    # The kernel did not take it all: its close waits for it (`aclose`).
                    channel._tail = True
        except BaseException:
            # Interrupted: the channels not reached keep their bytes, and a batch to
            # be written in (their next write only appends to what they hold).
            for channel in channels:
                if channel._unsent is not None:
                    if not self:
                        self.loop.call_soon(self.flush)
                    self.append(channel)
            raise
        finally:
            # Even if a write was interrupted (by a BaseException), what waited for this
            # turn's responses is not left behind: it runs now, or next turn.
            after = self.after
            if after:
                self.after = []
                if len(after) == 1:  # the usual count per turn under light load
                    self._call_after(*after[0])
                else:
                    for waiting in after:
                        self._call_after(*waiting)

    @staticmethod
    def _call_after(
        context: contextvars.Context, channel: TransportChannel, then: Any, argument: Any
    ) -> None:
        try:
            context.run(then, argument, not channel._lost)
        except Exception:  # `then` handles its own failures; this is a bug below it
            logger.exception("Finishing a request after its response was written failed")


async def open_channel(
    sock: socket.socket,
    write_timeout: float,
    tls: ssl.SSLContext | None = None,
    handshake_timeout: float = 10.0,
    writes: WriteBatch | None = None,
) -> Channel:
    """Wrap the accepted, non-blocking `sock` (see the module docstring); takes ownership.

    With `tls`, the TLS handshake is done first, within `handshake_timeout`
    seconds; a failed or late handshake raises `OSError` (`ssl.SSLError`,
    `TimeoutError`) and the socket is closed. `writes` is the serving loop's
    batch for small responses (asyncio only; without one, each is written at once).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio
        stream: anyio.abc.ByteStream = await anyio.abc.SocketStream.from_socket(sock)
        if tls is not None:
            with anyio.fail_after(handshake_timeout):
                try:
                    stream = await TLSStream.wrap(stream, server_side=True, ssl_context=tls)
                except (anyio.BrokenResourceError, anyio.EndOfStream) as error:
                    await anyio.aclose_forcefully(stream)
                    raise ConnectionError("TLS handshake failed") from error
        return StreamChannel(stream, write_timeout)
    # The channel is made here, not taken from what `connect_accepted_socket` returns:
    # with TLS, uvloop returns its own SSL protocol there, not ours.
    channel = TransportChannel(loop, write_timeout, tls=tls is not None, writes=writes)
    if tls is None:
        await loop.connect_accepted_socket(lambda: channel, sock)
    else:
        await loop.connect_accepted_socket(
            lambda: channel, sock, ssl=tls, ssl_handshake_timeout=handshake_timeout
        )
    return channel


class StreamChannel:
    """The anyio stream, used as it is."""

    __slots__ = ("_stream", "_write_timeout", "_unsent")

    def __init__(self, stream: anyio.abc.ByteStream, write_timeout: float) -> None:
        self._stream = stream
        self._write_timeout = write_timeout
        self._unsent = b""

    def write(self, data: bytes) -> bool:
        self._unsent = data
        return True

    async def flush(self) -> None:
        data, self._unsent = self._unsent, b""
        await self.send(data)

    def after_written(self, then: Callable[[Any, bool], None], argument: Any) -> bool:
        return False  # `flush` has written everything by the time anyone asks

    async def receive(self) -> bytes:
        return bytes(await self._stream.receive())

    async def send(self, data: bytes) -> None:
        with anyio.move_on_after(self._write_timeout):
            await self._stream.send(data)
            return
        await anyio.aclose_forcefully(self._stream)
        raise anyio.BrokenResourceError("the peer stopped reading")

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self._stream)

    async def wait_closed(self) -> None:
        # A stream cannot be watched without reading from it: here (trio) a peer that
        # left is only noticed when a write to it fails.
        await anyio.sleep_forever()


class TransportChannel(asyncio.Protocol):
    """Our own asyncio protocol on the socket's transport; see the module docstring."""

    __slots__ = (
        "_loop",
        "_write_timeout",
        "_transport",
        "_chunks",
        "_buffered",
        "_reading_paused",
        "_eof",
        "_lost",
        "_error",
        "_read_waiter",
        "_drain_waiter",
        "_writing_paused",
        "_tls",
        "_close_waiter",
        "_writes",
        "_unsent",
        "_tail",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write_timeout: float,
        tls: bool = False,
        writes: WriteBatch | None = None,
    ) -> None:
        self._loop = loop
        self._writes = writes
        #: Bytes `write` left for the end of the loop's turn (in `_writes`), if any.
        self._unsent: bytes | None = None
        #: A batched response the kernel did not take whole at the end of its turn is
        #: still being written: a close waits for it (within the write timeout).
        self._tail = False
        self._tls = tls
        self._write_timeout = write_timeout
        self._transport: Any = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._reading_paused = False
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        #: The future `receive` waits on: set to the bytes themselves when they arrive
        #: while nothing is buffered, else to None (look at `_chunks`, the EOF, the loss).
        self._read_waiter: asyncio.Future[bytes | None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._close_waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        # No buffering beyond the kernel's: any bytes it did not take pause writing,
        # so `send` returning means the response left this process.
        transport.set_write_buffer_limits(0)  # type: ignore[attr-defined]

    # -- asyncio.Protocol callbacks --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        waiter = self._read_waiter
        if waiter is not None and not self._chunks and not waiter.done():
            # The usual case: `receive` is waiting for exactly this. Hand it over.
            self._read_waiter = None
            waiter.set_result(bytes(data))
            return
        self._chunks.append(bytes(data))
        self._buffered += len(data)
        if self._buffered > READ_HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        self._wake_close_waiter()
        # Keep the transport open: the response may still be written (TLS has no half-close).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None:
            self._error = exc
        self._wake_reader()
        self._wake_close_waiter()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._tail = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            self._read_waiter = None
            waiter.set_result(None)

    def _wake_close_waiter(self) -> None:
        waiter = self._close_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the channel -------------------------------------------------------------------------

    async def receive(self) -> bytes:
        if self._chunks:
            # Bytes were already here (a pipelining or fast client): let the other
            # connections have a turn first, as a blocking read would have.
            await anyio.lowlevel.checkpoint()
        while not self._chunks:
            if self._lost:
                if self._error is not None:
                    raise anyio.BrokenResourceError from self._error
                raise anyio.EndOfStream
            if self._eof:
                raise anyio.EndOfStream
            waiter = self._loop.create_future()
            self._read_waiter = waiter
            try:
                data = await waiter
            except BaseException:
                self._read_waiter = None
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    # Handed over, then cancelled before it could be returned: keep it.
                    self._chunks.appendleft(waiter.result())
                raise
            if data is not None:  # handed over by `data_received`
                return data  # type: ignore[no-any-return]
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(_take_all(chunks))
        self._buffered = 0
        if self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def send(self, data: bytes) -> None:
        transport = self._transport
        if self._lost or transport.is_closing():
            raise anyio.BrokenResourceError
        if self._unsent is not None:  # a batched response goes first
            self.write_unsent()
        transport.write(data)
        if self._writing_paused:  # the kernel did not take it all: wait until it has
            await self._drain()

    def write(self, data: bytes) -> bool:
        transport = self._transport
        if self._lost or transport.is_closing():
            raise anyio.BrokenResourceError
        writes = self._writes
        if writes is not None and len(data) <= BATCHED_WRITE_LIMIT and not self._writing_paused:
            if self._unsent is None:
                self._unsent = data
                if not writes:
                    writes.loop.call_soon(writes.flush)
                writes.append(self)
            else:  # two responses in one turn (pipelining): still in order, in one write
                self._unsent += data
            return False
        if self._unsent is not None:
            self.write_unsent()
        transport.write(data)
        return self._writing_paused

    def after_written(self, then: Callable[[Any, bool], None], argument: Any) -> bool:
        if self._unsent is None:
            return False
        writes = self._writes
        assert writes is not None  # `_unsent` is only ever set with a batch
        writes.after.append((contextvars.copy_context(), self, then, argument))
        return True

    def write_unsent(self) -> None:
        """Hand the bytes `write` left for the end of the turn to the transport (also
        done, inlined, by `WriteBatch.flush`: a change here belongs there too)."""
        data = self._unsent
        if data is None:
            return
        self._unsent = None
        transport = self._transport
        if self._lost or transport.is_closing():
            return  # gone meanwhile: as if the kernel had taken them and the peer left
        try:
            transport.write(data)
        except Exception:  # pragma: no cover - a transport that is open takes bytes
            transport.abort()

    async def flush(self) -> None:
        if self._writing_paused:
            await self._drain()

    async def _drain(self) -> None:
        # Only here, off the fast path, is a timer worth its cost.
        timer = self._loop.call_later(self._write_timeout, self._write_timed_out)
        try:
            while self._writing_paused and not self._lost:
                waiter = self._loop.create_future()
                self._drain_waiter = waiter
                try:
                    await waiter
                finally:
                    self._drain_waiter = None
        finally:
            timer.cancel()
        if self._lost:  # gone, or dropped by `_write_timed_out`
            raise anyio.BrokenResourceError("the connection was lost while writing")

    def _write_timed_out(self) -> None:
        # Drop what is buffered and the connection; connection_lost wakes the writer.
        self._transport.abort()

    async def wait_closed(self) -> None:
        # The peer's end of input counts: as under uvicorn, a client that shut its
        # sending side is taken to be gone (`http.disconnect` for an ASGI app).
        while not (self._lost or self._eof):
            waiter = self._close_waiter
            if waiter is None or waiter.done():
                waiter = self._close_waiter = self._loop.create_future()
            await waiter

    async def aclose(self) -> None:
        transport = self._transport
        try:
            tail = self._tail
            if self._unsent is not None:
                # The last response, batched: it goes out before the connection closes.
                self.write_unsent()
                tail = True
            if tail and self._writing_paused and not self._lost:
                # A batched response the kernel has not taken whole: waited for (within
                # the write timeout), as `write` + `flush` would have.
                await self._drain()
        except anyio.BrokenResourceError:
            pass  # dropped for not reading, or gone: closed below all the same
        finally:
            # Even when cancelled while waiting above: the socket is never left open.
            if not transport.is_closing():
                # Nothing is buffered unless a send was interrupted; then drop it.
                if transport.get_write_buffer_size():
                    transport.abort()
                else:
                    transport.close()


def _take_all(chunks: deque[bytes]) -> list[bytes]:
    taken = list(chunks)
    chunks.clear()
    return taken
