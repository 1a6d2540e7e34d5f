"""The ASGI 3 adapter: serve a VelociPy app from uvicorn, hypercorn or any ASGI server.

One ASGI `http` call serves one exchange, in three steps:

1. the scope becomes a `RequestHead`; `drive_async` runs the exchange up to its
   `Respond`, reading the body from `http.request` messages only if the core
   asks (`ReadBody`) and running sync user code in worker threads;
2. the response goes out as `http.response.start` plus one
   `http.response.body` (or a `more_body` stream for `StreamingResponse`);
3. then, still inside the same ASGI call, the background tasks and dependency
   cleanup run, in order. Staying inside the call is deliberate: the server
   counts it as running work and waits for it at shutdown, while the client
   already has its response and the connection is free for its next request.

Nothing a task does escapes the call (the core logs task failures; the adapter
contains anything else), since an exception escaping makes uvicorn close the
keep-alive connection. If the server cancels the call at shutdown
(`--timeout-graceful-shutdown`), the cancellation is thrown into the exchange
first, so the core logs by name the task it interrupted and those it abandons.

Backpressure: while the app's background tasks in flight are at its
`max_tasks_in_flight`, a new `http` call waits for some to finish before it
reads its request. The server goes on accepting connections (that is its
business: see uvicorn's `--limit-concurrency`), but no request runs and no task
is added until there is room.

Sync calls never run on the event loop: handlers, dependencies and stream
iteration share one thread limiter, background tasks have their own, so slow
sync tasks cannot starve request handling of threads.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import sniffio

from velocipy.adapters._asgi_lifespan import refuse_websocket, run_lifespan
from velocipy.adapters._asgi_request import (
    DEFAULT_BODY_RATE_WINDOW,
    DEFAULT_MIN_BODY_RATE,
    BodyRate,
    head_from_scope,
    read_body,
    route_path,
)
from velocipy.adapters._drive import call_now, drive_async, iterate_async
from velocipy.adapters._gc import BUSY_FLOWS, CALM_FLOWS, ThresholdSwitch
from velocipy.core import Application, Call, ClientDisconnected, Done, Exchange, Respond
from velocipy.core._mounts import ASGI

logger = logging.getLogger("velocipy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Worker threads for sync handlers, dependencies and streams (anyio's usual default).
DEFAULT_HANDLER_THREADS = 40
#: Worker threads for sync background tasks, apart from the handlers' threads.
DEFAULT_TASK_THREADS = 16

_CLOSE = (b"connection", b"close")


#: Seconds between two looks at the task counts while calls wait for room.
ROOM_RECHECK = 0.5


def asgi_entry(app: Application, adapter: Any) -> Any:
    """`adapter` (the app's ASGI 3 callable) inside the app's pure ASGI middleware.

    Pure ASGI middleware (`app.add_middleware(SomeASGIMiddleware)`) is an ASGI
    concern: it wraps this entry point, never the core, so it runs wherever the
    app is served over ASGI (any ASGI server, and hosts that serve ASGI apps);
    the WSGI adapter refuses an app that has some. The last added is outermost.
    """
    entry: Any = adapter
    if app.foreign_mounts():
        app.check_servable("asgi")  # a WSGI mount cannot be served here: refuse, naming it
        entry = MountDispatch(app, adapter)
    for middleware_class, args, options in reversed(app.asgi_middleware):
        entry = middleware_class(entry, *args, **options)
    return entry


class MountDispatch:
    """The ASGI entry of an app with ASGI apps mounted: a request no route takes whose
    path lies under such a mount goes to that app, everything else to the adapter.

    The mounted app gets the scope with the mount's prefix added to `root_path`
    and `path` left whole (Starlette's `Mount`); it runs inside the app's pure
    ASGI middleware, outside its VelociPy middleware (the core never sees it).
    """

    __slots__ = ("app", "adapter")

    def __init__(self, app: Application, adapter: Any) -> None:
        self.app = app
        self.adapter = adapter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            root_path = scope.get("root_path", "")
            path = route_path(scope["path"], root_path)
            found = self.app.find_mount(scope.get("method", "GET"), path)
            if found is not None and found[0].kind == ASGI:
                mount, prefix, _ = found
                await mount.app({**scope, "root_path": root_path + prefix}, receive, send)
                return
        await self.adapter(scope, receive, send)


class ASGIAdapter:
    """A VelociPy application as an ASGI 3 application.

    `VelociPy.__call__` delegates here, so users never build one themselves;
    build one directly to choose the thread limits.

    Args:
        app: The application to serve.
        handler_threads: How many sync handlers, dependencies and stream steps
            may run in worker threads at once.
        task_threads: How many sync background tasks may run in worker threads
            at once; kept apart so slow tasks never hold the handlers' threads.
        freeze_gc: Once the lifespan startup is complete, freeze the objects alive
            then (`gc.freeze()`), so that garbage collections only scan what
            requests create, and unfreeze them at shutdown; and while many calls
            run their tasks, keep young collections small (`_gc.ThresholdSwitch`).
            Shortens collector pauses when many requests are in flight; see
            docs/asgi.md.
        min_body_rate: Slowest request body accepted, in bytes per second over
            each `body_rate_window`, for bodies that arrive in several messages
            (408 and `connection: close` below it, or after a window without a
            message); 0 turns it off. See docs/asgi.md for what it cannot see.
        body_rate_window: Seconds `min_body_rate` is averaged over.
    """

    __slots__ = (
        "app",
        "handler_threads",
        "task_threads",
        "freeze_gc",
        "_limiters",
        "_run_sync",
        "_paused",
        "_room",
        "_max_in_flight",
        "_tasks",
        "_body_rate",
        "_flows",
        "_collector",
    )

    def __init__(
        self,
        app: Application,
        *,
        handler_threads: int = DEFAULT_HANDLER_THREADS,
        task_threads: int = DEFAULT_TASK_THREADS,
        freeze_gc: bool = True,
        min_body_rate: float = DEFAULT_MIN_BODY_RATE,
        body_rate_window: float = DEFAULT_BODY_RATE_WINDOW,
    ) -> None:
        self.app = app
        self.handler_threads = handler_threads
        self.task_threads = task_threads
        self.freeze_gc = freeze_gc
        # anyio limiters belong to one async library; keep a pair per library in use.
        self._limiters: dict[str, tuple[anyio.CapacityLimiter, anyio.CapacityLimiter]] = {}
        self._run_sync = self.run_sync  # bind once, not per request
        #: True while the tasks in flight are at the app's bound: new calls wait.
        self._paused = False
        #: What waiting calls wait on, with the event loop it belongs to.
        self._room: tuple[object, anyio.Event] | None = None
        self._max_in_flight = app.tasks.max_in_flight
        self._body_rate = BodyRate(min_body_rate, body_rate_window)
        self._tasks = app.tasks
        #: Calls still running their tasks after the response; while many are, young
        #: garbage collections are kept small (`_gc.ThresholdSwitch`, if `freeze_gc`).
        self._flows = 0
        self._collector = ThresholdSwitch()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call: `http`, `lifespan` or `websocket`."""
        # `http` is served right here rather than in a helper: one coroutine frame less
        # on the path every request takes.
        if scope["type"] != "http":
            await self._serve_other(scope, receive, send)
            return
        if self._paused:
            await self._wait_for_room()
        exchange = self.app.exchange(head_from_scope(scope))
        try:
            # The reader is built as an argument, not kept in a local: once the response
            # is out nothing may read the body, and the tasks run without it alive.
            effect = await drive_async(
                exchange,
                exchange.start(),
                read_body=functools.partial(read_body, scope, receive, self._body_rate),
                run_sync=self._run_sync,
            )
        except ClientDisconnected:
            return  # gone before its request was complete: nothing to answer, nothing to run
        if type(effect) is Done:  # pragma: no cover - the core always responds first
            raise RuntimeError("the exchange ended without a response")
        respond: Respond = effect  # type: ignore[assignment]
        status = respond.status
        headers = respond.headers
        if status == 413 or status == 408:
            # The body was refused (too large, too slow), probably unread: do not reuse
            # the connection for it.
            headers = [*headers, _CLOSE]
        start = {"type": "http.response.start", "status": status, "headers": headers}
        if respond.stream is None:
            try:
                await send(start)
                await send({"type": "http.response.body", "body": respond.body})
            except Exception:
                # The server could not deliver it (ASGI 2.4 servers raise OSError once the
                # client is gone): the core logs the tasks as abandoned, then cleans up.
                await self._finish(exchange, exchange.throw(ClientDisconnected()))
                return
            except BaseException:
                _abandon(exchange)
                raise
        else:
            try:
                failure = await self._send_stream(exchange, respond, start, receive, send)
            except BaseException:
                _abandon(exchange)
                raise
            if failure is not None:
                await self._finish(exchange, exchange.throw(failure))
                if not isinstance(failure, ClientDisconnected):
                    raise failure  # an incomplete response: let the server drop the connection
                return
        # The response is out; the tasks may run for seconds. Drop what only the response
        # needed, so that while they run the garbage collector has fewer objects to scan
        # (with many slow tasks in flight, its pauses grow with what each one keeps alive).
        del effect, respond, headers, start
        try:
            after = exchange.send(None)
        except Exception:  # pragma: no cover - a core bug must still not reach the server
            logger.exception("Background work for %s %s failed", *_label(exchange))
            return
        if type(after) is not Done:  # tasks or cleanup to run: inline, as `_finish` would
            limit = self._max_in_flight
            if limit is not None and not self._paused:
                # `tasks.has_room()`, inline: a method call here costs every request.
                tasks = self._tasks
                if tasks.pending + tasks.running >= limit:
                    self._paused = True
            self._flows += 1
            if self._flows == BUSY_FLOWS and self.freeze_gc:
                self._collector.busy()
            try:
                await drive_async(
                    exchange, after, read_body=_no_body_after_response, run_sync=self._run_sync
                )
            except Exception:
                logger.exception("Background work for %s %s failed", *_label(exchange))
            finally:
                self._flows -= 1
                if self._flows == CALM_FLOWS and self._collector.tuned:
                    self._collector.calm()
                if self._paused:
                    self._check_room()

    def _check_room(self) -> None:
        """Let waiting calls in if the tasks in flight are below the bound again."""
        if self.app.tasks.has_room():
            self._paused = False
            room, self._room = self._room, None
            if room is not None:
                room[1].set()

    async def _wait_for_room(self) -> None:
        """Wait until the tasks in flight are below the app's bound."""
        token = anyio.lowlevel.current_token()
        while self._paused:
            room = self._room
            if room is None or room[0] != token:
                room = self._room = (token, anyio.Event())
            # Tasks also leave flight without a call ending here (abandoned with their
            # request): look again now and then rather than wait for a wake-up forever.
            with anyio.move_on_after(ROOM_RECHECK):
                await room[1].wait()
            self._check_room()

    async def _serve_other(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            try:
                await run_lifespan(self.app, receive, send, freeze_gc=self.freeze_gc)
            finally:
                self._collector.calm()  # CPython's thresholds back, whatever is in flight
        elif kind == "websocket":
            await refuse_websocket(receive, send)
        else:
            # The ASGI spec asks apps to fail on scope types they do not know.
            raise ValueError(f"VelociPy cannot serve ASGI scope type {kind!r}")

    async def run_sync(self, call: Call) -> Any:
        """Perform a sync `Call` in a worker thread, under the limiter its purpose uses."""
        library = sniffio.current_async_library()
        limiters = self._limiters.get(library)
        if limiters is None:
            limiters = self._limiters[library] = (
                anyio.CapacityLimiter(self.handler_threads),
                anyio.CapacityLimiter(self.task_threads),
            )
        if call.purpose == "task":
            # A task past its timeout, or still running at a shutdown deadline, is left
            # to finish in its thread: the exchange moves on and logs it.
            return await anyio.to_thread.run_sync(
                call_now, call, limiter=limiters[1], abandon_on_cancel=True
            )
        return await anyio.to_thread.run_sync(call_now, call, limiter=limiters[0])

    async def _finish(self, exchange: Exchange, effect: Any) -> None:
        """Run what follows the response (tasks, cleanup); contain anything that escapes."""
        if type(effect) is Done:
            return
        try:
            await drive_async(
                exchange, effect, read_body=_no_body_after_response, run_sync=self._run_sync
            )
        except Exception:
            # The core already logs each task's failure; reaching here is a bug, and it
            # must still not reach the server, which would drop the keep-alive connection.
            logger.exception("Background work for %s %s failed", *_label(exchange))

    async def _send_stream(
        self, exchange: Exchange, respond: Respond, start: Message, receive: Receive, send: Send
    ) -> Exception | None:
        """Send a streamed body; return why it was not delivered completely, if it was not.

        A watcher listens for `http.disconnect` meanwhile (uvicorn's `send` keeps
        accepting chunks for a client that left), and stops an endless stream.
        """
        stream = respond.stream
        assert stream is not None
        complete = False
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_watch_disconnect, receive, group.cancel_scope)
                try:
                    await send(start)
                    async for chunk in iterate_async(stream, self._run_sync):
                        if chunk:
                            await send(
                                {"type": "http.response.body", "body": chunk, "more_body": True}
                            )
                    await send({"type": "http.response.body", "body": b""})
                    complete = True
                except Exception as error:
                    failure = error
                finally:
                    group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_iterator(stream.iterator)
        if complete:
            return None
        if failure is None or isinstance(failure, OSError):
            return ClientDisconnected()  # the watcher saw the client leave, or send() did
        if not isinstance(failure, ClientDisconnected):
            method, path = _label(exchange)
            logger.error("Streaming the response to %s %s failed", method, path, exc_info=failure)
        return failure

    async def _close_iterator(self, iterator: Any) -> None:
        """Close the user's stream (its `finally` blocks run now, not at garbage collection)."""
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:
                logger.exception("Closing a streamed response body failed")
            return
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                await self._run_sync(Call(close, (), {}, False, "stream"))
            except Exception:
                logger.exception("Closing a streamed response body failed")


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel `scope` once the client disconnects (request body messages are skipped)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # a server that cannot receive any more has lost the client too
        pass
    scope.cancel()


async def _no_body_after_response(limit: int) -> bytes:  # pragma: no cover
    """`read_body` for the work after the response: the core never reads the body then."""
    raise RuntimeError("the request body cannot be read once the response is sent")


def _abandon(exchange: Exchange) -> None:
    """The call is being cancelled mid-response: log its tasks as abandoned, then drop it."""
    try:
        exchange.throw(ClientDisconnected())
    except Exception:  # pragma: no cover - the core handles a failed delivery itself
        pass
    exchange.close()


def _label(exchange: Exchange) -> tuple[str, str]:
    return exchange.head.method, exchange.head.path
