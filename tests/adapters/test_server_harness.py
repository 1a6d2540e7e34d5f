"""Shared by the built-in server's tests (none here): an app, an in-process server, raw sockets.

`serving(app, **limits)` runs `velocipy.server.Server` on a background event-loop
thread (an anyio blocking portal) on a free port and stops it gracefully
afterwards, so socket-level tests cost milliseconds, not a subprocess each.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio.from_thread

from velocipy import BackgroundTasks, Request, StreamingResponse, VelociPy
from velocipy.server import Server, ServerConfig, bind_socket

app = VelociPy()
#: What the tasks of `app` recorded, by key.
EVENTS: dict[str, list[str]] = {}


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.get("/sync")
def sync_hello() -> dict[str, str]:
    return {"message": "sync"}


@app.post("/echo")
async def echo(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {"length": len(body), "text": body.decode("utf-8", "replace")}


@app.post("/echo-headers")
async def echo_headers(data: dict[str, Any], request: Request) -> dict[str, Any]:
    """The header names the handler sees, its JSON body read first (trailers must not join)."""
    return {"names": sorted({name for name, _ in request.headers.items()})}


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    """Who the server says the client is, and how it was reached (proxy headers, TLS)."""
    client = request.client
    return {"client": list(client) if client else None, "url": request.url}


@app.post("/ignore-body")
async def ignore_body() -> dict[str, str]:
    return {"read": "no"}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):
            yield f"part{index};".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/order/{key}/{name}")
async def order(key: str, name: str) -> dict[str, str]:
    """Record in EVENTS[key] the order in which requests reach the app."""
    EVENTS.setdefault(key, []).append(name)
    return {"name": name}


#: Size of each chunk of `/big`, and how many there are.
BIG_CHUNK, BIG_CHUNKS = 64 * 1024, 64


@app.get("/big")
async def big(chunks: int = BIG_CHUNKS) -> StreamingResponse:
    count = chunks

    async def chunks_of_big() -> AsyncIterator[bytes]:
        for index in range(count):
            yield bytes([65 + index % 26]) * BIG_CHUNK

    return StreamingResponse(chunks_of_big(), media_type="application/octet-stream")


async def slow_async(key: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    EVENTS.setdefault(key, []).append("slow-async")
    print(f"EVENT slow-async {key}", flush=True)  # seen by subprocess tests


def slow_sync(key: str, seconds: float) -> None:
    time.sleep(seconds)
    EVENTS.setdefault(key, []).append("slow-sync")
    print(f"EVENT slow-sync {key}", flush=True)


def failing(key: str) -> None:
    EVENTS.setdefault(key, []).append("failing")
    raise RuntimeError("task failed on purpose")


@app.post("/task/{kind}/{key}")
async def schedule(kind: str, key: str, seconds: float, background_tasks: BackgroundTasks) -> str:
    if kind == "async":
        background_tasks.add_task(slow_async, key, seconds)
    elif kind == "sync":
        background_tasks.add_task(slow_sync, key, seconds)
    else:
        background_tasks.add_task(failing, key)
    return "scheduled"


@dataclass
class Running:
    """A server running in this process."""

    server: Server
    port: int
    portal: anyio.from_thread.BlockingPortal
    exit_code: list[int] = field(default_factory=list)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stop(self) -> None:
        self.portal.call(self.server.request_stop)


#: The request parsers the server's tests run on (see `velocipy.server.protocols`).
PARSERS = ("h11", "httptools")
#: The parser `serving` uses unless told otherwise (set by `using_parser`).
_current_parser = ["h11"]


@contextlib.contextmanager
def using_parser(http: str) -> Iterator[str]:
    """Make `serving` use the parser `http` within the block (for fixtures parametrised on it)."""
    previous = _current_parser[0]
    _current_parser[0] = http
    try:
        yield http
    finally:
        _current_parser[0] = previous


#: Event loops the server runs on: anyio backend name and options.
LOOPS: dict[str, tuple[str, dict[str, Any]]] = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


@contextlib.contextmanager
def serving(
    application: VelociPy = app, *, loop: str = "asyncio", **limits: Any
) -> Iterator[Running]:
    """Serve `application` on 127.0.0.1 with `ServerConfig(**limits)`; stop it afterwards."""
    sock = bind_socket("127.0.0.1", 0, 128)
    port = sock.getsockname()[1]
    limits.setdefault("access_log", False)
    limits.setdefault("freeze_gc", False)  # a full collection of the test process per server
    limits.setdefault("http", _current_parser[0])
    server = Server(application, ServerConfig(port=port, **limits))
    ready = threading.Event()
    backend, options = LOOPS[loop]
    with anyio.from_thread.start_blocking_portal(backend, options) as portal:
        future = portal.start_task_soon(functools.partial(server.serve, sock, ready=ready.set))
        assert ready.wait(10), "the server did not start"
        running = Running(server, port, portal)
        try:
            yield running
        finally:
            portal.call(server.request_stop)
            running.exit_code.append(future.result(timeout=20))


# -- raw HTTP over sockets -------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Reader:
    """Reads HTTP/1.1 responses off a socket, one at a time, keeping leftover bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError("connection closed")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise EOFError("connection closed")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response(self, head_request: bool = False) -> Reply:
        """The next response (1xx included); raises EOFError if the server closed first."""
        status_line = self._line()
        status = int(status_line.split(b" ")[1])
        headers: dict[str, str] = {}
        raw = [status_line]
        while True:
            line = self._line()
            if not line:
                break
            raw.append(line)
            name, _, value = line.partition(b":")
            headers[name.decode().strip().lower()] = value.decode().strip()
        body = b""
        if head_request or status < 200 or status in (204, 304):
            pass
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    self._line()
                    break
                body += self._exactly(size)
                self._line()
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            while self._fill():
                pass
            body, self.buffer = self.buffer, b""
        return Reply(status, headers, body, b"\r\n".join(raw))

    def closed(self, timeout: float = 3.0) -> bool:
        """Whether the server closes the connection (without sending more) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        self.buffer += data
        return data == b""


def get(path: str, *extra: str, version: str = "1.1") -> bytes:
    """The bytes of a GET request with a Host header plus `extra` header lines."""
    lines = [f"GET {path} HTTP/{version}", "Host: test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange_raw(running: Running, data: bytes, timeout: float = 5.0) -> bytes:
    """Send `data`, half-close, and return everything the server sends until it closes."""
    with running.connect(timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(OSError):
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        return received


def status_of(raw: bytes) -> int | None:
    """The status of the first response in `raw` (None if there is none)."""
    if not raw.startswith(b"HTTP/1.1 "):
        return None
    return int(raw[9:12])
