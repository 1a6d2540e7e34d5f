"""An event loop's own Redis connection: commands written and answered on the loop.

The publishing thread (`velocipy.tasks._publisher`) costs every request a hand-over
to another thread and back (a GIL hand-off, a `call_soon_threadsafe`, the thread's
own Python), about as much as building and sending the message itself. On an
asyncio loop the same LPUSH can go out from the loop: the socket is non-blocking,
the write returns at once, and the integer answers come back in `data_received`.

`LoopRedis` is that connection, one per event loop (and publisher): `send(data,
answers, done)` writes packed commands and calls `done(error)` on the loop once
their `answers` one-line replies are in (`error` is the first error reply, as
`redis.exceptions.ResponseError`, or why the connection failed). It connects on
first use and again after a failure, with the same handshake (`AUTH`, `SELECT`)
and settings as the thread's `RedisWire`; what is written while it connects is
sent once it has. It does no retrying and keeps no deadline: the caller does both
(the publisher's watch), so that the rules are the thread's.

Only the replies of LPUSH (`:n`) and of the handshake (`+OK`) are understood:
one line each, which is all this connection is ever sent.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable
from typing import cast

import redis.exceptions

from velocipy.contrib._redis_wire import _CRLF, _HEADS, RedisWire, lpush_one, pack

Done = Callable[[BaseException | None], None]


class _Expected:
    """The answers one `send` waits for."""

    __slots__ = ("remaining", "prefix", "error", "done")

    def __init__(self, remaining: int, prefix: bytes, done: Done) -> None:
        self.remaining = remaining
        #: How a good answer starts (`:` for LPUSH's integer, `+OK` for the handshake).
        self.prefix = prefix
        self.error: BaseException | None = None
        self.done = done


class _Link(asyncio.Protocol):
    """One TCP connection and the answers it still owes, in order."""

    def __init__(self, owner: LoopRedis) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.expected: collections.deque[_Expected] = collections.deque()
        self.buffer = b""
        self.lost = False
        #: Why it was failed on purpose, told to what it owed.
        self.failure: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an `asyncio.Transport` subclass, but writes).
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # asyncio sets it already on TCP; said here for the reader
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, chunks: list[bytes], answers: int, prefix: bytes, done: Done) -> None:
        self.expected.append(_Expected(answers, prefix, done))
        self.transport.writelines(chunks)  # type: ignore[union-attr]  # made before any write

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        expected = self.expected
        start = 0
        while expected:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            entry = expected[0]
            if entry.error is None and not buffer.startswith(entry.prefix, start):
                line = buffer[start + 1 : end].decode(errors="replace")
                entry.error = redis.exceptions.ResponseError(line)
            start = end + 2
            entry.remaining -= 1
            if not entry.remaining:
                expected.popleft()
                entry.done(entry.error)
        self.buffer = buffer[start:]
        if start < len(buffer) and not expected:  # an answer nobody asked for
            self.fail(redis.exceptions.ConnectionError("Redis sent an unexpected answer"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = self.failure or redis.exceptions.ConnectionError(
            f"Redis closed the connection ({exc!r})" if exc else "Redis closed the connection"
        )
        self.owner._lost(self)
        expected, self.expected = self.expected, collections.deque()
        for entry in expected:
            entry.done(error)

    def fail(self, error: BaseException) -> None:
        """Close at once (a stalled or confused connection): what it owed fails."""
        if self.transport is not None and not self.lost:
            if self.failure is None:
                self.failure = error
            self.transport.abort()  # `connection_lost` follows, on the loop


class LoopRedis:
    """The Redis connection of one event loop, made with `settings`' address and handshake."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: RedisWire) -> None:
        self._loop = loop
        self._settings = settings
        self._link: _Link | None = None
        self._connecting: asyncio.Task[None] | None = None
        #: Sends made while connecting, written once connected.
        self._queued: list[tuple[list[bytes], int, Done]] = []

    def send(self, chunks: list[bytes], answers: int, done: Done) -> None:
        """Write `chunks` (packed commands owing `answers` integer replies, in one system
        call); `done(error)` is called on the loop once they are in, or the connection
        failed."""
        link = self._link
        if link is not None:
            link.write(chunks, answers, b":", done)
            return
        self._queued.append((chunks, answers, done))
        if self._connecting is None:
            self._connecting = self._loop.create_task(self._connect())

    def lpush(self, key: str, value: bytes, done: Done) -> None:
        """`send(lpush_one(key, value), 1, done)` in fewer calls: under a light load each
        round trip is one request's one message, and this runs once per request."""
        link = self._link
        head = _HEADS.get((key, 1))
        if link is None or head is None:
            self.send(lpush_one(key, value), 1, done)
            return
        link.expected.append(_Expected(1, b":", done))
        link.transport.writelines(  # type: ignore[union-attr]  # made before any write
            [head, b"$%d\r\n" % len(value), value, _CRLF]
        )

    def reset(self) -> None:
        """Drop the connection (it stopped answering): what it owed fails, the next
        `send` connects afresh."""
        link = self._link
        if link is not None:
            link.fail(redis.exceptions.ConnectionError("Redis stopped answering"))

    def close(self) -> None:
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()
        if self._connecting is not None:
            self._connecting.cancel()

    def _lost(self, link: _Link) -> None:
        if self._link is link:
            self._link = None

    async def _connect(self) -> None:
        settings = self._settings
        host, port = settings.address
        link: _Link | None = None
        try:
            _, made = await asyncio.wait_for(
                self._loop.create_connection(lambda: _Link(self), host, port),
                settings.connect_timeout,
            )
            link = made
            handshake = settings.handshake()
            if handshake:
                # Answered before anything else: a refusal fails the connection, and with
                # it every command written behind the handshake.
                def checked(error: BaseException | None, link: _Link = made) -> None:
                    if error is not None:
                        link.fail(error)

                made.write([pack(c) for c in handshake], len(handshake), b"+OK", checked)
            queued, self._queued = self._queued, []
            self._link = made
            for chunks, answers, done in queued:
                made.write(chunks, answers, b":", done)
        except BaseException as error:
            # Told to each sender, who decides about retrying; never lost in a task.
            if link is not None:
                link.fail(error)
            self._fail_queued(error)
            if not isinstance(error, Exception):
                raise
        finally:
            self._connecting = None

    def _fail_queued(self, error: BaseException) -> None:
        if isinstance(error, asyncio.CancelledError):
            error = redis.exceptions.ConnectionError("the connection to Redis was closed")
        queued, self._queued = self._queued, []
        for _, _, done in queued:
            done(error)
