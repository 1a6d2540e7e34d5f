"""The serve loop: accept connections, run background tasks server-wide, stop gracefully.

`Server.serve(sock)` runs until `request_stop()` (or SIGINT/SIGTERM when it
handles signals). Three task groups nest, outermost first:

- the *tasks* group: every exchange's background tasks and dependency cleanup,
  so they outlive the connection that produced them;
- the *connections* group: the accept loop and one task per connection;
- a sweeper that closes connections past their idle or header deadline.

Stopping: stop accepting; close idle keep-alive connections; let in-flight
requests finish (their responses carry `Connection: close`); wait for
connections and task flows until `graceful_timeout`; then cancel what is left.
Cancellation is thrown into each exchange by `drive_async`, so the core logs
every interrupted and abandoned task by name; this module logs how many flows
it cancelled. A second signal cancels everything at once and exits with 1.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from typing import Any, cast

import anyio
import anyio.abc
import anyio.to_thread

from velocipy.adapters._drive import call_now, drive_async
from velocipy.adapters._gc import (
    BUSY_FLOWS,
    CALM_FLOWS,
    ThresholdSwitch,
    startup_objects_frozen,
)
from velocipy.core import Application, Call, DeclarationError, Effect, Exchange

from ._asgi_host import ASGIHost, asgi_connection_class, is_asgi_app, needs_host
from ._channel import WriteBatch, open_channel
from ._config import ServerConfig
from ._connection_base import FIRST_REQUEST_GRACE, IDLE, no_body
from ._proxy import TrustedProxies
from ._tls import ssl_context
from .protocols import Connection, connection_class
from .protocols._heads import ResponseTail

logger = logging.getLogger("velocipy.server")
access_logger = logging.getLogger("velocipy.access")

#: The signals that stop the server: the first gracefully, the second at once.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: Seconds between two checks, in a worker, that its master process is still there.
PARENT_CHECK_INTERVAL = 1.0

#: Exit codes of `serve`.
EXIT_OK, EXIT_FORCED, EXIT_STARTUP_FAILED = 0, 1, 3


def bind_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on (`host`, `port`); raises `OSError` (e.g. the port is in use)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_unix_socket(path: str, backlog: int) -> socket.socket:
    """A listening unix-domain socket at `path` (a stale socket file there is replaced)."""
    if os.path.exists(path) and stat.S_ISSOCK(os.stat(path).st_mode):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)  # as uvicorn: the proxy in front may run as another user
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def socket_from_fd(fd: int, backlog: int) -> socket.socket:
    """The listening socket inherited as file descriptor `fd` (from systemd, a supervisor)."""
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise OSError(f"file descriptor {fd} is not a stream socket")
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


class Server:
    """The built-in HTTP/1.1 server for one application.

    Args:
        app: The application to serve: a VelociPy app, or any ASGI 3 app.
        config: Limits and timeouts (see `ServerConfig`).
    """

    def __init__(self, app: Any, config: ServerConfig | None = None) -> None:
        self.config = config = config or ServerConfig()
        config.validate()
        #: The app the connections ask for exchanges: a bare VelociPy app itself (the
        #: direct path to the core), or anything else behind an `ASGIHost`: a plain
        #: ASGI app, or a VelociPy app that needs its ASGI entry (`app.needs_asgi`).
        self.app: Application = app
        self.asgi: ASGIHost | None = None
        if needs_host(app):
            if not is_asgi_app(app):
                raise DeclarationError(f"{app!r} is neither a VelociPy app nor an ASGI app")
            if isinstance(app, Application):
                app.check_servable("asgi")  # a mounted WSGI app cannot be: refused, named
            self.asgi = ASGIHost(app, self)
            self.app = cast(Application, self.asgi)
        else:
            app.check_servable("core")  # a mounted WSGI app: refused, naming the mount
        self.max_body_size = config.max_body_size
        self.server_header = config.server_header.encode("latin-1")
        self.access_log = config.access_log
        self.date_header = config.date_header
        #: Headers every response gets: `Server` (unless disabled), then `--header` ones.
        self.default_headers: list[tuple[bytes, bytes]] = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in config.headers
        ]
        if self.server_header and not any(n == b"server" for n, _ in self.default_headers):
            self.default_headers.insert(0, (b"server", self.server_header))
        #: The same, pre-encoded with the Date line for the httptools connection; None when
        #: one of them frames the body or is invalid (the general path then handles them).
        self.response_tail = _response_tail(self.default_headers, self.date_header)
        #: The TLS context (None: plain HTTP); building it reads the certificate files.
        self.tls = ssl_context(config)
        self.scheme = "https" if self.tls is not None else "http"
        self.trusted_proxies = (
            TrustedProxies(config.forwarded_allow_ips) if config.proxy_headers else None
        )
        self.root_path = config.root_path
        #: Requests still to serve before stopping (`limit_max_requests`); None: no limit.
        self.requests_left = config.limit_max_requests
        #: The class serving one socket: h11's or httptools' (see `protocols`).
        self.connection_class = (
            connection_class(config.http)
            if self.asgi is None
            else asgi_connection_class(config.http)
        )
        #: Connections open right now.
        self.connections: set[Connection] = set()
        #: True once a stop has begun: no new requests are read.
        self.shutting_down = False
        #: Background-task flows (tasks plus cleanup of one exchange) still running.
        self.flows = 0
        #: Keeps young collections small while many flows are in flight (see `_gc`).
        self._collector = ThresholdSwitch(config.freeze_gc)
        #: True while the app's tasks in flight are at `max_tasks_in_flight`: no
        #: connection is accepted and no request read until some finish.
        self.paused = False
        tasks = self.app.tasks
        self._task_counts = tasks
        # Read per flow, so kept at hand (the registry's `pending` and `running` too).
        self._max_in_flight = tasks.max_in_flight
        self._room: anyio.Event | None = None
        self.exit_code = EXIT_OK
        self._stop: anyio.Event | None = None
        self._is_worker = False
        self._forced = False
        self._tasks_group: anyio.abc.TaskGroup | None = None
        self._connections_group: anyio.abc.TaskGroup | None = None
        self._handler_limiter: anyio.CapacityLimiter | None = None
        self._task_limiter: anyio.CapacityLimiter | None = None
        self._asyncio_loop: asyncio.AbstractEventLoop | None = None
        self._writes: WriteBatch | None = None
        #: The asyncio tasks running flows, with their exchanges.
        self._flow_tasks: dict[asyncio.Task[Any], Exchange] = {}
        # Bound once: a bound method is a new object on every attribute access.
        self._run_sync = self.run_sync
        self._on_flow_done = self._flow_done
        #: The context `_flow_done` runs in, for every flow (the serving task's, taken once
        #: `serve` runs). Without one, `add_done_callback` copies the current context: a
        #: new object that each waiting flow keeps alive until it ends, one more for every
        #: collection to scan (see adapters/_gc.py).
        self._bookkeeping = contextvars.Context()

    @property
    def asyncio_loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop serving (None on trio, or before `serve`)."""
        return self._asyncio_loop

    # -- performing the core's effects ------------------------------------------------------

    async def run_sync(self, call: Call) -> Any:
        """Run a sync `Call` in a worker thread: tasks and requests use separate limiters."""
        limiter = self._task_limiter if call.purpose == "task" else self._handler_limiter
        # Abandon on cancel: at the shutdown deadline a stuck thread must not hold the
        # process; the exchange still learns of the interruption and logs it.
        return await anyio.to_thread.run_sync(
            call_now, call, limiter=limiter, abandon_on_cancel=True
        )

    def start_flow(self, exchange: Exchange, effect: Effect) -> None:
        """Drive the rest of `exchange` (its tasks and cleanup) in the server's task group.

        Trio's way. On asyncio nothing comes here: a connection's flow begins in place
        (`drive_eagerly`, from `_connection_base`) and an ASGI app's call is started
        eagerly (`ASGIHost.start_app`); a flow that then waits becomes an asyncio task
        the server tracks (`adopt_flow`) and cancels at the shutdown deadline, as the
        task group does here.
        """
        self.flows += 1
        if self.flows == BUSY_FLOWS:
            self._collector.busy()
        limit = self._max_in_flight
        if limit is not None and not self.paused:
            # `has_room()`, inline: a method call here was a measurable part of a request.
            tasks = self._task_counts
            if tasks.pending + tasks.running >= limit:
                self.paused = True
        assert self._tasks_group is not None
        self._tasks_group.start_soon(self._run_flow, exchange, effect)

    def adopt_flow(self, task: asyncio.Task[Any], exchange: Any) -> None:
        """Track `task`, already running, as a flow: a connection's that waited, an ASGI app's call.

        The same bookkeeping as `start_flow`'s on trio: counted, awaited by a
        graceful stop, cancelled at its deadline; `exchange.head` names it in the log.
        """
        self.flows += 1
        if self.flows == BUSY_FLOWS:
            self._collector.busy()
        limit = self._max_in_flight
        if limit is not None and not self.paused:
            tasks = self._task_counts
            if tasks.pending + tasks.running >= limit:
                self.paused = True
        self._flow_tasks[task] = exchange
        task.add_done_callback(self._on_flow_done, context=self._bookkeeping)

    def _cancel_flows(self) -> None:
        if self._tasks_group is not None:
            self._tasks_group.cancel_scope.cancel()
        for task in list(self._flow_tasks):
            task.cancel()

    def _flow_done(self, task: asyncio.Task[Any]) -> None:
        exchange = self._flow_tasks.pop(task)
        self.flows -= 1
        if self.flows == CALM_FLOWS and self._collector.tuned:
            self._collector.calm()
        if self.paused:
            self._check_room()
        if not task.cancelled():
            error = task.exception()
            if error is not None:  # the core logs task failures itself; this is a core bug
                logger.error("Background work for %s failed", exchange.head.path, exc_info=error)

    async def _run_flow(self, exchange: Exchange, effect: Effect) -> None:
        try:
            await drive_async(exchange, effect, read_body=no_body, run_sync=self._run_sync)
        except Exception:  # the core logs task failures itself; this would be a core bug
            logger.exception("Background work for %s failed", exchange.head.path)
        finally:
            self.flows -= 1
            if self.flows == CALM_FLOWS and self._collector.tuned:
                self._collector.calm()
            if self.paused:
                self._check_room()

    # -- backpressure: the bound on tasks in flight ---------------------------------------

    def _check_room(self) -> None:
        """Resume taking requests if the tasks in flight are below the bound again."""
        if self._task_counts.has_room():
            self.paused = False
            room, self._room = self._room, None
            if room is not None:
                room.set()

    async def wait_for_room(self) -> None:
        """Return once the server is not paused (at once if it is not)."""
        while self.paused:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()

    def count_request(self) -> None:
        """Count one request against `limit_max_requests`; stop gracefully at the limit."""
        assert self.requests_left is not None
        self.requests_left -= 1
        if self.requests_left == 0:
            logger.info(
                "Maximum request limit of %d reached: stopping (background tasks are drained)",
                self.config.limit_max_requests,
            )
            self.request_stop()

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful stop (call on the server's event loop)."""
        if self._stop is not None:
            self._stop.set()

    def force_stop(self) -> None:
        """Cancel every connection and background task now; `serve` then returns 1."""
        self._forced = True
        self.exit_code = EXIT_FORCED
        self.request_stop()
        if self._connections_group is not None:
            self._connections_group.cancel_scope.cancel()
        self._cancel_flows()

    async def serve(
        self,
        sock: socket.socket,
        *,
        handle_signals: bool = False,
        parent: int | None = None,
        ready: Callable[[], None] | None = None,
        stop_signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
    ) -> int:
        """Serve on the listening socket `sock` until stopped; return the exit code.

        Args:
            sock: A bound, listening socket (see `bind_socket`); the server closes it.
            handle_signals: Stop gracefully on SIGINT/SIGTERM (main thread only).
            parent: The pid of a master process this server is a worker of: if
                that process goes away, stop gracefully rather than serve on alone.
            ready: Called once the app has started and connections are accepted.
            stop_signals: The signals `handle_signals` stops on (under `--reload`,
                SIGTERM only: Ctrl+C is the watcher's).
        """
        config = self.config
        self._stop = anyio.Event()
        self._is_worker = parent is not None
        sock.setblocking(False)
        self._handler_limiter = anyio.CapacityLimiter(config.handler_threads)
        self._task_limiter = anyio.CapacityLimiter(config.task_threads)
        self.access_log = config.access_log and access_logger.isEnabledFor(logging.INFO)
        try:
            self._asyncio_loop = asyncio.get_running_loop()
        except RuntimeError:  # trio
            self._asyncio_loop = None
        # Small responses of one turn of the loop, written together (see `_channel.py`).
        self._writes = WriteBatch(self._asyncio_loop) if self._asyncio_loop is not None else None
        self._bookkeeping = contextvars.copy_context()
        async with anyio.create_task_group() as outer:
            if handle_signals:
                outer.start_soon(self._watch_signals, stop_signals)
            if parent is not None:
                outer.start_soon(self._watch_parent, parent)
            try:
                async with self.app.lifespan_context():
                    # Full collections then skip what startup left alive (see docs/server.md).
                    with startup_objects_frozen(config.freeze_gc):
                        outer.start_soon(self._sweep)
                        try:
                            await self._serve_until_stopped(sock, ready)
                        finally:
                            self._collector.calm()
            except Exception:
                if self._stop.is_set():
                    logger.exception("Application shutdown failed")
                else:
                    logger.exception("Application startup failed")
                    self.exit_code = EXIT_STARTUP_FAILED
            finally:
                sock.close()
            outer.cancel_scope.cancel()
        return self.exit_code

    async def _serve_until_stopped(
        self, sock: socket.socket, ready: Callable[[], None] | None
    ) -> None:
        assert self._stop is not None
        async with anyio.create_task_group() as tasks:
            self._tasks_group = tasks
            async with anyio.create_task_group() as connections:
                self._connections_group = connections
                accepting = anyio.CancelScope()
                connections.start_soon(self._accept, sock, connections, accepting)
                if ready is not None:
                    ready()
                await self._stop.wait()
                accepting.cancel()
                await self._drain()
            # Cancelled plain asyncio flows need a moment to log what they abandon.
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                while self._flow_tasks:
                    await anyio.sleep(0.01)

    async def _drain(self) -> None:
        """The graceful part of a stop: see the module docstring."""
        self.shutting_down = True
        first_request_by = time.monotonic() + FIRST_REQUEST_GRACE
        for connection in list(self.connections):
            if connection.phase == IDLE:
                if connection.fresh:  # accepted, its request not read yet: a moment more
                    deadline = connection.deadline
                    if deadline is None or deadline > first_request_by:
                        connection.deadline = first_request_by
                else:
                    connection.expire()
        timeout = self.config.graceful_timeout
        deadline = time.monotonic() + timeout
        if self.app.tasks.unfinished:
            logger.info("Waiting for background tasks: %s", self.app.tasks.describe())
            self.app.tasks.log_every_name(logger)
        # A request answered in this turn of the loop has its tasks begun at its end,
        # once its response is written (`WriteBatch.after`): waited for too.
        writes = self._writes
        while (
            self.connections or self.flows or (writes is not None and writes.after)
        ) and not self._forced:
            if time.monotonic() >= deadline:
                logger.warning(
                    "Graceful timeout (%gs) reached: cancelling %d background task flow(s) "
                    "and %d connection(s); unfinished tasks: %s",
                    timeout,
                    self.flows,
                    len(self.connections),
                    self.app.tasks.describe(),
                )
                self.app.tasks.log_every_name(logger)
                if self._connections_group is not None:
                    self._connections_group.cancel_scope.cancel()
                self._cancel_flows()
                return
            await anyio.sleep(0.01)

    async def _accept(
        self, sock: socket.socket, group: anyio.abc.TaskGroup, scope: anyio.CancelScope
    ) -> None:
        # Connections beyond max_connections are not accepted: they wait in the
        # kernel's listen backlog until a slot frees, and are never answered 503.
        #
        # Accepting is a plain non-blocking `accept()` that takes every connection
        # already waiting before it yields; the socket becomes a channel in the
        # connection's own task. anyio's listener `accept()` costs two turns of the
        # event loop per connection: with fifty busy connections and fifty more
        # arriving, the last of them waited over a second for its first byte to be read.
        slots = anyio.Semaphore(self.config.max_connections)
        with scope:
            while True:
                if self.paused:
                    await self.wait_for_room()
                try:
                    slots.acquire_nowait()  # `await acquire()` yields even when a slot is free
                except anyio.WouldBlock:
                    await slots.acquire()
                while True:
                    try:
                        client, _ = sock.accept()
                        break
                    except BlockingIOError:
                        await anyio.wait_readable(sock)
                    except OSError as error:  # e.g. out of file descriptors: back off, go on
                        if sock.fileno() < 0:  # the listening socket was closed: we are done
                            return
                        logger.error("Accepting a connection failed: %s", error)
                        await anyio.sleep(0.1)
                group.start_soon(self._handle, client, slots)

    async def _handle(self, client: socket.socket, slots: anyio.Semaphore) -> None:
        try:
            if client.family in (socket.AF_INET, socket.AF_INET6):
                # Responses are written whole; waiting to coalesce them only adds latency.
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.setblocking(False)
            peer, local = _address(client.getpeername), _address(client.getsockname)
            channel = await open_channel(
                client, self.config.body_timeout, self.tls, self.config.header_timeout, self._writes
            )
        except OSError:  # gone before it could be served
            client.close()
            slots.release()
            return
        except BaseException:
            client.close()
            slots.release()
            raise
        connection = self.connection_class(self, channel, peer, local)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)
            slots.release()

    async def _sweep(self) -> None:
        """Close connections past their deadline, checking a few times per shortest timeout."""
        config = self.config
        shortest = min(config.header_timeout, config.keepalive_timeout)
        tick = min(max(shortest / 4, 0.02), 0.5)
        while True:
            await anyio.sleep(tick)
            if self.paused:
                # Tasks also leave flight outside flows (abandoned with their request).
                self._check_room()
            now = time.monotonic()
            for connection in self.connections:
                deadline = connection.deadline
                if deadline is not None and deadline <= now:
                    connection.deadline = None
                    connection.expire()

    async def _watch_parent(self, parent: int) -> None:
        # A master killed outright (SIGKILL, OOM) cannot tell its workers; they would
        # serve on with nobody to stop or replace them. A worker's parent changes
        # when its master dies, so checking once a second is enough to notice.
        while os.getppid() == parent:
            await anyio.sleep(PARENT_CHECK_INTERVAL)
        logger.warning("The master process %d is gone: stopping", parent)
        self.request_stop()

    async def _watch_signals(self, stop_signals: tuple[signal.Signals, ...]) -> None:
        with anyio.open_signal_receiver(*stop_signals) as signals:
            if hasattr(signal, "pthread_sigmask"):
                # A worker process starts with them blocked (see _workers): now that
                # they have a handler, let them in, and any that came meanwhile.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            received = 0
            try:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    received += 1
                    # Counted, not read off `_stop`: a server already stopping on its own
                    # (`limit_max_requests`) drains gracefully on its first signal too.
                    if received == 1:
                        logger.info(
                            "Received %s: shutting down (waiting up to %gs for requests and tasks)",
                            name,
                            self.config.graceful_timeout,
                        )
                        self.request_stop()
                    else:
                        logger.warning("Received %s again: exiting now", name)
                        self.force_stop()
            finally:
                if self._is_worker and hasattr(signal, "pthread_sigmask"):
                    # The drain is over and the worker is about to exit. Once the receiver
                    # closes, a stop signal's default action would kill it: a worker that
                    # retired on its own (`limit_max_requests`) just as its master forwarded
                    # a SIGTERM then died by that signal, and the master exited with 1.
                    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _response_tail(headers: list[tuple[bytes, bytes]], date: bool) -> ResponseTail | None:
    if any(name in _FRAMING_NAMES for name, _ in headers):
        return None
    try:
        return ResponseTail(headers, date)
    except ValueError:
        return None


_FRAMING_NAMES = frozenset({b"content-length", b"transfer-encoding", b"connection"})


def _address(get: Callable[[], Any]) -> tuple[str, int] | None:
    """(host, port) from `socket.getpeername` or `getsockname`; None if it has none."""
    try:
        address = get()
    except OSError:
        return None
    if isinstance(address, tuple) and len(address) >= 2:
        return (str(address[0]), int(address[1]))
    return None


def describe(sock: socket.socket, scheme: str = "http") -> str:
    """The `http://host:port` (or `unix:PATH`) a listening socket serves on."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        return f"{scheme}+unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


__all__ = [
    "Server",
    "bind_socket",
    "bind_unix_socket",
    "socket_from_fd",
    "describe",
    "EXIT_OK",
    "EXIT_FORCED",
    "EXIT_STARTUP_FAILED",
]
