"""The publishing thread's Redis connection: LPUSH commands packed and answered by hand.

Celery on Redis needs one command from the web process: `LPUSH queue message...`,
once per queue per round trip, answered by an integer. redis-py's connection
packs each command and parses each answer with some forty Python calls, which
the publishing thread paid for every round trip (and under load the event loop
waits on the GIL while it does); the protocol for this one command is a few
lines, written here with a handful of calls.

Only a plain TCP connection is made here (host, port, database, user and
password, the pool's timeouts): `RedisWire.for_pool` answers None for anything
else (TLS, Unix sockets, Sentinel...), and the backend then keeps redis-py's own
connection for it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import redis
import redis.exceptions

_CRLF = b"\r\n"


def pack(args: Sequence[bytes]) -> bytes:
    """One command in the Redis protocol (RESP): an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


def lpush_chunks(commands: Sequence[tuple[str, Sequence[bytes | str]]]) -> list[bytes]:
    """`LPUSH key values...` for each `(key, values)`: the chunks of one write, in order.

    The values themselves are chunks, not copied into a frame: the messages are the
    bulk of the bytes, and a transport writes the chunks in one system call
    (`writelines`). A `str` value is sent UTF-8 encoded.
    """
    chunks: list[bytes] = []
    for key, values in commands:
        head = _HEADS.get((key, len(values)))
        if head is None:
            name = key.encode()
            head = b"*%d\r\n$5\r\nLPUSH\r\n$%d\r\n%b\r\n" % (len(values) + 2, len(name), name)
            if len(_HEADS) < _HEADS_MAX:
                _HEADS[key, len(values)] = head
        chunks.append(head)
        for value in values:
            data = value if type(value) is bytes else value.encode()  # type: ignore[union-attr]
            chunks += (b"$%d\r\n" % len(data), data, _CRLF)
    return chunks


def lpush_one(key: str, value: bytes) -> list[bytes]:
    """`lpush_chunks([(key, [value])])`, the common case under a light load, in fewer steps."""
    head = _HEADS.get((key, 1))
    if head is None:
        return lpush_chunks([(key, [value])])
    return [head, b"$%d\r\n" % len(value), value, _CRLF]


def pack_lpush(commands: Sequence[tuple[str, Sequence[bytes | str]]]) -> bytes:
    """`LPUSH key values...` for each `(key, values)`, packed into one write."""
    return b"".join(lpush_chunks(commands))


#: Per key and number of values: the start of its `LPUSH` command (a few queues, usually).
_HEADS: dict[tuple[str, int], bytes] = {}
_HEADS_MAX = 4096


class RedisWire:
    """One blocking TCP connection to Redis, used by one thread (the publisher's)."""

    __slots__ = ("address", "_db", "_auth", "connect_timeout", "_timeout", "_sock", "_rest")

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float | None = None,
        timeout: float | None = None,
    ) -> None:
        self.address = (host, port)
        self._db = db
        self._auth: tuple[bytes, ...] = ()
        if password is not None:
            self._auth = (b"AUTH", *([username.encode()] if username else []), password.encode())
        self.connect_timeout = connect_timeout
        self._timeout = timeout
        self._sock: socket.socket | None = None
        #: Bytes read past the last answer (none, as long as every command is answered).
        self._rest = b""

    @classmethod
    def for_pool(cls, pool: Any) -> RedisWire | None:
        """The wire for the connections `pool` (a redis-py pool) makes, if they are plain TCP."""
        if pool.connection_class is not redis.Connection:
            return None
        kwargs = pool.connection_kwargs
        if kwargs.get("client_name") or kwargs.get("protocol") not in (None, 2, "2"):
            return None
        return cls(
            kwargs.get("host") or "localhost",
            int(kwargs.get("port") or 6379),
            db=int(kwargs.get("db") or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            connect_timeout=kwargs.get("socket_connect_timeout"),
            timeout=kwargs.get("socket_timeout"),
        )

    def lpush(self, commands: Sequence[tuple[str, Sequence[bytes | str]]]) -> None:
        """`LPUSH key values...` for each `(key, values)`, in one write; raise if any failed.

        A server's error answer raises `redis.exceptions.ResponseError` (not retried);
        a broken connection raises `OSError` or `redis.exceptions.ConnectionError`
        and is closed, so that the next call connects afresh.
        """
        sock = self._sock
        if sock is None:
            sock = self._connect()
        data = pack_lpush(commands)
        try:
            sock.sendall(data)
            answers = self._read_lines(sock, len(commands))
        except BaseException:
            self.close()
            raise
        for answer in answers:
            if answer[:1] != b":":
                raise redis.exceptions.ResponseError(answer[1:].decode(errors="replace"))

    def handshake(self) -> list[Sequence[bytes]]:
        """The commands a new connection starts with, each answered `+OK`."""
        commands: list[Sequence[bytes]] = []
        if self._auth:
            commands.append(self._auth)
        if self._db:
            commands.append((b"SELECT", b"%d" % self._db))
        return commands

    def close(self) -> None:
        sock, self._sock, self._rest = self._sock, None, b""
        if sock is not None:
            sock.close()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._timeout)
            handshake = self.handshake()
            if handshake:
                sock.sendall(b"".join(pack(command) for command in handshake))
                for answer in self._read_lines(sock, len(handshake)):
                    if answer != b"+OK":
                        raise redis.exceptions.ConnectionError(
                            f"Redis refused the connection: {answer.decode(errors='replace')}"
                        )
        except BaseException:
            sock.close()
            self._rest = b""
            raise
        self._sock = sock
        return sock

    def _read_lines(self, sock: socket.socket, count: int) -> list[bytes]:
        """The next `count` one-line answers (integers, errors, `+OK`)."""
        buffer = self._rest
        while buffer.count(_CRLF) < count:
            chunk = sock.recv(65536)
            if not chunk:
                raise redis.exceptions.ConnectionError("Redis closed the connection")
            buffer += chunk
        lines = buffer.split(_CRLF, count)
        self._rest = lines.pop()
        return lines
