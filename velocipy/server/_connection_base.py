"""What the built-in server's two connections (h11, httptools) share: one place for it.

The connections differ in how they parse requests and frame responses; the rest
is the same and lives here: the phases and limits, the errors a body read
raises, closing an expired connection, the short error answer, resuming the
exchange after its response, reading body bytes within the body timeout and the
minimum body rate, and the access-log line. Only what runs off the hot path or
once per request as a method anyway is shared, so the split costs no
instructions: the answer loops themselves stay in each connection (a call more
per request would show in `bench/instructions.py`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anyio

from velocipy.adapters._contexts import CleanContext, InContext
from velocipy.adapters._drive import drive_eagerly
from velocipy.core import ClientDisconnected, ClientError, Done, Effect, Exchange

from ._wire import error_response

if TYPE_CHECKING:
    from ._channel import Channel
    from ._server import Server

logger = logging.getLogger("velocipy.server")
access_logger = logging.getLogger("velocipy.access")

#: Phases (plain ints: compared on every request).
IDLE, HEAD, BUSY = 0, 1, 2

#: Seconds a stopping server still waits for the first request of a connection it has
#: just accepted: its client has most likely sent it already (a reload, a retiring
#: worker, a rolling restart), and closing such a connection unanswered loses it.
FIRST_REQUEST_GRACE = 1.0

#: Most unread request-body bytes drained after a response to keep the connection open.
MAX_DRAIN = 64 * 1024

#: What a vanished or misbehaving peer raises on our stream.
NETWORK_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)

_monotonic = time.monotonic


class BodyReadTimeout(ClientError):
    """The client paused longer than the body timeout while sending a body."""

    status_code = 408


class BodyTooSlow(ClientError):
    """The client sent a body slower than the minimum body rate."""

    status_code = 408


class BadBodyFraming(ClientError):
    """The request body's framing (chunked encoding) is malformed."""


class ConnectionBase:
    """Serves the requests of one socket in order until either side closes it.

    A subclass parses (`_serve`, which reads heads and answers each request) and
    reads bodies (`_read_body`, the `ReadBody`/`ReadChunk` effects).
    """

    __slots__ = (
        "server",
        "phase",
        "deadline",
        "scope",
        "expired",
        "client",
        "local",
        "close_after",
        "fresh",
        "content_length",
        "rate_window_start",
        "rate_window_bytes",
        "channel",
        "run_sync",
        "read_body",
        "scheme",
        "proxied",
        "context",
        "shared_context",
    )

    def __init__(
        self,
        server: Server,
        channel: Channel,
        client: tuple[str, int] | None,
        local: tuple[str, int] | None,
    ) -> None:
        self.server = server
        self.phase = IDLE
        #: When this connection is to be closed for being idle or slow (None: never).
        self.deadline: float | None = None
        self.scope = anyio.CancelScope()
        self.expired = False
        self.client = client
        self.local = local
        self.close_after = False
        #: True until its first request head is read: a stop gives such a connection a
        #: moment to send it (see `Server._drain`) rather than close it unanswered.
        self.fresh = True
        self.content_length: int | None = None
        #: The minimum body rate's window: when it began (0: no wait for body bytes yet
        #: in this request) and the bytes received since.
        self.rate_window_start = 0.0
        self.rate_window_bytes = 0
        #: Where bytes are read and written (see `_channel`).
        self.channel = channel
        # The two effect performers, bound once per connection rather than per request.
        self.run_sync = server.run_sync
        self.read_body = self._read_body
        self.scheme = server.scheme
        trusted = server.trusted_proxies
        #: The trusted proxies, if the peer is one whose forwarding headers are believed.
        self.proxied = (
            trusted if trusted is not None and (client[0] if client else None) in trusted else None
        )
        #: The connection's context before any request (made here, in the connection's task).
        self.context = CleanContext()
        #: False once a request left a value in the context it ran in (see `run`).
        self.shared_context = True

    def expire(self) -> None:
        """Close this connection now (it is idle past its deadline, or the server is stopping)."""
        self.expired = True
        self.scope.cancel()

    async def run(self) -> None:
        """Serve requests until the connection ends; never raises for anything a client does."""
        channel = self.channel
        try:
            with self.scope:
                # Requests run in the connection's context, one after another (no switch:
                # most set nothing). What a request sets in a ContextVar must die with it,
                # as its task does under uvicorn: if one left a value, `_serve` returns
                # after it and the connection goes on in a fresh copy of the context as
                # it was before any request, stepped by `InContext`, with that value gone.
                again = await self._serve()
                while again:
                    self.shared_context = True
                    again = await InContext(self.context.clean.copy(), self._serve())
            if self.expired and self.phase == HEAD:
                # A slow head: answer 408 if the client is still listening, briefly.
                with anyio.move_on_after(1):
                    await channel.send(error_response(408, self.server.server_header))
        except NETWORK_ERRORS:
            pass
        except Exception:
            logger.exception("Unexpected error on connection from %s", _format(self.client))
        finally:
            await channel.aclose()

    async def _serve(self) -> bool:
        """Serve requests until the connection ends (False) or one changed the context (True)."""
        raise NotImplementedError

    async def _read_body(self, limit: int, size: int = 0) -> Any:
        raise NotImplementedError

    async def _reject(self, status: int) -> None:
        self.phase = BUSY
        self.deadline = None
        with anyio.move_on_after(1):
            await self.channel.send(error_response(status, self.server.server_header))

    def _finish(self, exchange: Exchange, delivered: bool) -> None:
        """Resume the exchange after its response; hand any tasks and cleanup to the server.

        What comes after a response (tasks, dependency cleanup: user code the driver
        runs) begins only once a response still waiting in this turn's write batch
        (see `_channel.py`) has been handed to the kernel, so that no task or cleanup
        starts before its response has left the process. Resuming the exchange runs
        only the core's own code, so it is done at once (a request with nothing after
        its response then waits for nothing), except with a queue backend: there the
        flow may hand its batch to the backend as it resumes (`TaskBackend.detach`, no
        effect), so it is resumed only once the response is written.
        """
        if delivered and type(exchange) is Exchange:
            app = exchange.app
            if (
                app is not None
                and app.task_queue is not None
                and self.channel.after_written(self._finish, exchange)  # here again then
            ):
                return
        try:
            rest = exchange.send(None) if delivered else exchange.throw(ClientDisconnected())
        except Exception:
            logger.exception("Resuming the exchange after its response failed")
            return
        if type(rest) is Done:
            return
        if delivered and self.channel.after_written(self._begin_rest, (exchange, rest)):
            return
        self._begin_rest((exchange, rest), delivered)

    def _begin_rest(self, pending: tuple[Exchange, Effect], delivered: bool) -> None:
        """Perform the rest of an exchange, `pending` = (exchange, its next effect).

        `delivered` is not looked at: a response handed to a connection lost before
        the end of the turn is like one the kernel took before the peer left, and the
        request's cleanup must run either way.
        """
        exchange, rest = pending
        server = self.server
        loop = server._asyncio_loop
        if loop is None:  # trio: the server's task group runs it
            server.start_flow(exchange, rest)
            return
        # On asyncio the rest begins right here (`drive_eagerly`): a flow whose tasks
        # finish in their first step is over before this returns, with no coroutine or
        # task of its own; one that waits is a task the server tracks from then on.
        try:
            task = drive_eagerly(loop, exchange, rest, read_body=no_body, run_sync=self.run_sync)
        except Exception:  # the core logs task failures itself; this is a core bug
            logger.exception("Background work for %s failed", exchange.head.path)
            return
        if task is not None:
            server.adopt_flow(task, exchange)

    def _log_access(
        self, method: str, target: bytes, version: str, status: int, began: float
    ) -> None:
        """The access-log line of one request (only called with the access log on)."""
        access_logger.info(
            '%s - "%s %s HTTP/%s" %d %.1fms',
            _format(self.client),
            method,
            target.decode("latin-1"),
            version,
            status,
            (_monotonic() - began) * 1000,
        )

    async def _receive_body_bytes(self) -> bytes:
        """More body bytes, within the body timeout (pauses) and the minimum body rate.

        The rate is measured only once the server has to wait for body bytes (a body
        that came with its head costs nothing): per window, the bytes received since
        the window began must keep up with `min_body_rate`.
        """
        config = self.server.config
        if not self.rate_window_start:
            self.rate_window_start = _monotonic()
            self.rate_window_bytes = 0
        with anyio.move_on_after(config.body_timeout):
            try:
                data = await self.channel.receive()
            except NETWORK_ERRORS:
                raise ClientDisconnected() from None
            self.rate_window_bytes += len(data)
            elapsed = _monotonic() - self.rate_window_start
            if elapsed >= config.body_rate_window:
                if self.rate_window_bytes < config.min_body_rate * elapsed:
                    self.close_after = True
                    raise BodyTooSlow("The request body arrived too slowly")
                self.rate_window_start += elapsed
                self.rate_window_bytes = 0
            return data
        self.close_after = True
        raise BodyReadTimeout("Timed out reading the request body")


def no_body(limit: int, size: int = 0) -> Any:
    """The body reader of a flow after its response: the request's body is gone by then."""
    raise RuntimeError("no request body can be read after the response")


def _format(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "-"
