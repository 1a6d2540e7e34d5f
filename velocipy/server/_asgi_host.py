"""Any ASGI 3 application on the built-in server: `velocipy run module:asgi_app`.

`ASGIHost` stands where the server expects a VelociPy app: it gives the server
the lifespan (ASGI's `lifespan` protocol), the background-task counts it drains
at a stop, and, per request, an `ASGICycle` as the exchange (see
`_asgi_cycle`). It serves a plain ASGI app (Starlette, a bare function) and a
VelociPy app that needs its ASGI entry point (`app.needs_asgi`: pure ASGI
middleware such as OpenTelemetry's or Sentry's); a bare VelociPy app is never
wrapped, it keeps the direct path to the core.

The connections are the usual ones (h11 or httptools) with one difference,
made by subclassing: their request head also carries the connection and the
raw path, which the cycle needs for the scope and for reading the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import anyio
import anyio.abc
import h11

from velocipy.adapters._eager import start_eagerly
from velocipy.core import Application, Call, Done, Exchange, RequestHead
from velocipy.core._registry import TaskRegistry

from ._asgi_cycle import ASGICycle

if TYPE_CHECKING:
    from ._server import Server
    from .protocols import ConnectionClass

logger = logging.getLogger("velocipy.server")

Message = MutableMapping[str, Any]

#: `max_body_size=None` on the server: no limit of its own for an ASGI app's body.
NO_LIMIT = 1 << 62

_DONE = Done()


class StartupFailed(RuntimeError):
    """The app answered `lifespan.startup` with `lifespan.startup.failed`."""


class ShutdownFailed(RuntimeError):
    """The app answered `lifespan.shutdown` with `lifespan.shutdown.failed`."""


def is_asgi_app(app: Any) -> bool:
    """Whether `app` can be called as an ASGI 3 application: `app(scope, receive, send)`."""
    return callable(app) and not isinstance(app, type)


def needs_host(app: Any) -> bool:
    """Whether the server must serve `app` through ASGI (anything but a bare VelociPy app)."""
    return not isinstance(app, Application) or app.needs_asgi


class ASGIHost:
    """An ASGI application as the server's app (see the module docstring).

    Args:
        app: The ASGI 3 callable: a plain ASGI app, or a VelociPy app (its own
            `__call__` is its ASGI entry, inside its pure ASGI middleware).
        server: The server it runs in (to start each app call as a background flow).
    """

    def __init__(self, app: Any, server: Server) -> None:
        self.app = app
        self.server = server
        #: What the server drains at a stop: a VelociPy app's own tasks, or none.
        self.tasks = app.tasks if isinstance(app, Application) else TaskRegistry()
        #: The lifespan's state: filled by the app at startup, copied into every request.
        self.state: dict[str, Any] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        #: The connection whose request head was made last, and that head (see `exchange`).
        self.asking: tuple[Any, RequestHead | None] = (None, None)
        size = server.config.max_body_size
        self.max_body_size = NO_LIMIT if size is None else size

    def exchange(self, head: RequestHead) -> Exchange:
        """The exchange the connection drives for one request: an `ASGICycle`.

        It has everything of `Exchange` the connection and the drivers use (`start`,
        `send`, `throw`, `close`, `head`), so the connection serves both alike.
        """
        # The connection asking: `_answer` calls this right after `_request_head`, with
        # nothing in between, so `asking` is this request's (see the classes below);
        # checked, so that an await ever put between the two fails loudly.
        connection, asked = self.asking
        if asked is not head:
            raise RuntimeError("ASGIHost.exchange: the head is not the one made last")
        return ASGICycle(self, head, connection)  # type: ignore[return-value]

    def start_app(self, cycle: ASGICycle) -> None:
        """Run `app(scope, receive, send)` for `cycle` as one of the server's background flows.

        On asyncio the app's task takes its first step right here, on the
        connection's turn (`start_eagerly`): an app that answers without waiting has
        its response ready when this returns, and the connection never waits for it.
        """
        loop = cycle.loop
        if loop is not None:
            task = start_eagerly(loop, self._call_app(cycle))
            if task is not None:  # None: the call is over already (it never waited)
                self.server.adopt_flow(task, cycle)
        else:
            run = Call(self._call_app, (cycle,), {}, True, "asgi")
            self.server.start_flow(cast(Exchange, _AppCall(cycle.head)), run)

    async def _call_app(self, cycle: ASGICycle) -> None:
        head = cycle.head
        raw_path = cycle.connection.raw_path
        root = head.root_path
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": head.http_version,
            "server": head.server,
            "client": head.client,
            "scheme": head.scheme,
            "method": head.method,
            # The full path, root included, as the ASGI spec asks (and uvicorn does).
            "root_path": root,
            "path": root + head.path if root else head.path,
            "raw_path": root.encode("latin-1") + raw_path if root else raw_path,
            "query_string": head.query_string,
            "headers": head.headers,
            "state": self.state.copy(),
        }
        try:
            result = await self.app(scope, cycle.receive, cycle.app_send)
        except BaseException as error:
            if isinstance(error, anyio.get_cancelled_exc_class()):
                raise  # the server stopping: it logs what it cancels
            logger.error("Exception in ASGI application", exc_info=error)
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned %r.", result)
            elif cycle.status is None and not cycle.disconnected:
                logger.error("ASGI callable returned without starting response.")
            elif not cycle.final and not cycle.disconnected:
                logger.error("ASGI callable returned without completing response.")
        finally:
            cycle.app_finished()

    @contextlib.asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """ASGI's `lifespan` protocol around serving (see `Lifespan`).

        A failure is raised once the lifespan's task group is left, so the server
        sees the app's own message rather than a group of exceptions.
        """
        #: The asyncio loop serving (None on trio), read by every request's cycle.
        self.loop = self.server.asyncio_loop
        lifespan = Lifespan(self.app, self.state)
        async with anyio.create_task_group() as group:
            group.start_soon(lifespan.run)
            failure: RuntimeError | None = await lifespan.startup()
            if failure is None:
                try:
                    yield
                finally:
                    with anyio.CancelScope(shield=True):
                        failure = await lifespan.shutdown()
            group.cancel_scope.cancel()
        if failure is not None:
            raise failure


class _AppCall:
    """The exchange the server's flow drives for an app call: one call, then done."""

    __slots__ = ("head",)
    app = None

    def __init__(self, head: RequestHead) -> None:
        self.head = head

    def send(self, value: Any) -> Done:
        return _DONE

    def throw(self, error: BaseException) -> Done:
        raise error


class Lifespan:
    """The server's side of ASGI's `lifespan` protocol, as uvicorn's `--lifespan auto`.

    `run` calls the app with the `lifespan` scope. `startup` sends
    `lifespan.startup` and waits for the answer: `lifespan.startup.failed` gives
    `StartupFailed` (the server then exits without serving); an app that raises
    before answering does not support the protocol, and is served without it
    (as is one that returns without a word). `shutdown` does the same for
    `lifespan.shutdown`.
    """

    def __init__(self, app: Any, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[Message](2)
        self._from_app, self._replies = anyio.create_memory_object_stream[Message](2)
        self.answered = False
        self.ended = False

    async def run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._app_inbox.receive, self._app_send)
        except BaseException as error:
            if isinstance(error, anyio.get_cancelled_exc_class()):
                raise
            if not self.answered:
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                logger.error("Exception in 'lifespan' protocol", exc_info=error)
        finally:
            self.ended = True
            self._from_app.close()

    async def _app_send(self, message: Message) -> None:
        self.answered = True
        await self._from_app.send(message)

    async def _ask(self, kind: str) -> Message | None:
        if self.ended:
            return None
        await self._to_app.send({"type": kind})
        try:
            return await self._replies.receive()
        except anyio.EndOfStream:
            return None  # the app's lifespan ended (or never supported the protocol)

    async def startup(self) -> RuntimeError | None:
        """Send `lifespan.startup`; return the failure (`StartupFailed`) if the app reports one."""
        return await self._phase("startup", StartupFailed)

    async def shutdown(self) -> RuntimeError | None:
        """Send `lifespan.shutdown`; return the failure (`ShutdownFailed`) if it reports one."""
        return await self._phase("shutdown", ShutdownFailed)

    async def _phase(self, phase: str, failed: type[RuntimeError]) -> RuntimeError | None:
        logger.info("Waiting for application %s.", phase)
        reply = await self._ask(f"lifespan.{phase}")
        if reply is not None:
            kind = reply.get("type")
            if kind == f"lifespan.{phase}.failed":
                return failed(reply.get("message", "") or kind)
            if kind != f"lifespan.{phase}.complete":
                return failed(f"unexpected lifespan message {kind!r}")
        logger.info("Application %s complete.", phase)
        return None


# -- the connections: the usual ones, whose heads carry what the scope needs -----------------


def _raw_path(target: bytes, head: RequestHead) -> bytes:
    if target[:1] == b"/":
        at = target.find(b"?")
        return target if at < 0 else target[:at]
    # An absolute-form target (`GET http://host/path`): its path, encoded again.
    return quote(head.path, safe="/:@!$&'()*+,;=-._~").encode("ascii")


_classes: dict[str, ConnectionClass] = {}


def asgi_connection_class(http: str) -> ConnectionClass:
    """The connection class serving ASGI apps with the parser `http` (see `protocols`)."""
    from .protocols import resolve_http

    parser = resolve_http(http)
    made = _classes.get(parser)
    if made is not None:
        return made
    if parser == "httptools":
        from .protocols.httptools import HttptoolsConnection

        class ASGIHttptoolsConnection(HttptoolsConnection):
            __slots__ = ("raw_path",)

            def _request_head(self, method: str, version: bytes) -> RequestHead:
                head = super()._request_head(method, version)
                self.raw_path = _raw_path(self.url, head)
                self.server.asgi.asking = (self, head)  # type: ignore[union-attr]
                return head

            def request_has_body(self) -> bool:
                """Whether the request has a body (llhttp ends a body-less one with its head)."""
                return not self.message_done

        made = _classes[parser] = ASGIHttptoolsConnection
    else:
        from ._connection import HTTPConnection

        class ASGIHTTPConnection(HTTPConnection):
            __slots__ = ("raw_path",)

            def _request_head(
                self, event: h11.Request, headers: list[tuple[bytes, bytes]]
            ) -> RequestHead:
                head = super()._request_head(event, headers)
                self.raw_path = _raw_path(bytes(event.target), head)
                self.server.asgi.asking = (self, head)  # type: ignore[union-attr]
                return head

            def request_has_body(self) -> bool:
                """Whether the request has a body (h11 ends a body-less one with its head)."""
                return self.h11.their_state is not h11.DONE

        made = _classes[parser] = ASGIHTTPConnection
    return made
