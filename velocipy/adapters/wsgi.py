"""The WSGI adapter: a VelociPy app as a PEP 3333 application, for gunicorn and friends.

`app.wsgi` is a `WSGIAdapter`. Per request it builds the core's `RequestHead`
from the environ, drives the exchange with the sync driver in the server's
thread (sync user code runs right there; async user code on the process's one
event-loop thread, see `_wsgi_loop`), calls `start_response` and returns an
iterable body: buffered bodies carry `Content-Length`, streamed ones are
iterated chunk by chunk as the server writes them.

Background tasks ("via threads"): the server calls the iterable's `close()`
when it is done with the response. Only if the body was iterated to its end
(the response went out completely) are the tasks released; otherwise the
exchange is told the client went away and the core logs them as abandoned.
With `tasks="thread"` (the default) `close()` hands the rest of the exchange to
a bounded `TaskRunner` and returns at once, so the server thread is free for
the next request; with `tasks="inline"` `close()` runs the tasks itself, and
the server thread (with its keep-alive connection) waits for them.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, Literal

from velocipy.adapters import _wsgi_process
from velocipy.adapters._contexts import iterate_in
from velocipy.adapters._drive import drive_sync, iterate_sync
from velocipy.adapters.task_runner import DEFAULT_QUEUE_SIZE, DEFAULT_THREADS, TaskRunner
from velocipy.core import (
    Application,
    BodyTooLarge,
    ClientDisconnected,
    ClientError,
    DeclarationError,
    Done,
    Exchange,
    RequestHead,
    Respond,
    reason_phrase,
)
from velocipy.core._mounts import WSGI
from velocipy.core._registry import needs_lock
from velocipy.core._tasks import callable_name

logger = logging.getLogger("velocipy")

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
TaskMode = Literal["thread", "inline"]

_READ_CHUNK = 64 * 1024
_copy_context = contextvars.copy_context
_DISCONNECTED_BODY = b'{"detail":"The client disconnected before sending the whole body"}'
_DISCONNECTED_HEADERS = (
    ("content-type", "application/json"),
    ("content-length", str(len(_DISCONNECTED_BODY))),
)


class WSGIAdapter:
    """A VelociPy application as a PEP 3333 WSGI application (`app.wsgi`).

    Args:
        app: The application to serve.
        tasks: Where background tasks run after a complete response. "thread"
            (default): on a bounded pool of runner threads, so the server thread
            is free at once. "inline": in the response iterable's `close()`, in
            the server thread, which waits for them before its next request.
        task_threads: The most runner threads, started on demand (tasks of
            different requests run in parallel up to this; those of one request
            run in order).
        task_queue_size: Requests whose tasks may wait for a runner thread; past
            that, tasks run in the server thread (see `TaskRunner`).
        drain_timeout: Seconds the drain at process exit may take after the stop
            began. Default: derived from gunicorn's `graceful_timeout` and
            `timeout` under gunicorn, else 25 s.
    """

    def __init__(
        self,
        app: Application,
        *,
        tasks: TaskMode = "thread",
        task_threads: int = DEFAULT_THREADS,
        task_queue_size: int = DEFAULT_QUEUE_SIZE,
        drain_timeout: float | None = None,
    ) -> None:
        if tasks not in ("thread", "inline"):
            raise ValueError(f'tasks must be "thread" or "inline", got {tasks!r}')
        self.app = app
        self.tasks_mode = tasks
        self._run_coroutine = _wsgi_process.LOOP.run_coroutine
        self.runner: TaskRunner | None = None
        if tasks == "thread":
            self.runner = TaskRunner(
                _wsgi_process.LOOP, threads=task_threads, queue_size=task_queue_size
            )
        if drain_timeout is not None:
            _wsgi_process.set_drain_timeout(drain_timeout)
        refuse_asgi_middleware(app)
        app.check_servable("wsgi")  # an ASGI mount cannot be served here: refuse, naming it
        _wsgi_process.find_server()
        _wsgi_process.serving(app)
        if needs_lock(app.tasks):  # mounted VelociPy apps share this registry
            # Task threads drive exchanges in parallel: their state changes need a lock.
            app.tasks.lock = threading.Lock()
        #: Whether the app's lifespan has been entered in this process (or there is none).
        self._started_in: int | None = None
        self._start_lock = threading.Lock()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (PEP 3333)."""
        if self._started_in != _wsgi_process.PID:
            self._start()
        runner = self.runner
        if runner is not None and runner.paused:  # too many tasks in flight: wait for room
            runner.wait_for_room(self.app.tasks)
        exchange = self.app.exchange(request_head(environ))
        # The server reuses its threads: each request runs in a context of its own,
        # so that what a handler sets in a ContextVar dies with its request.
        context = _copy_context()
        try:
            effect = context.run(
                drive_sync,
                exchange,
                exchange.start(),
                read_body=partial(_read_body, environ),  # a C-level partial: cheap per request
                run_coroutine=self._run_coroutine,
            )
        except ClientDisconnected:
            # The body was cut short: nobody is left to answer, but a WSGI app must
            # answer something, and raising would make the server log a traceback.
            start_response("400 Bad Request", list(_DISCONNECTED_HEADERS))
            return [_DISCONNECTED_BODY]
        if type(effect) is not Respond:  # pragma: no cover - the core always responds first
            raise RuntimeError("the exchange ended without a response")
        respond: Respond = effect
        status = respond.status
        headers = []  # a loop, not a comprehension: no function object per request
        for name, value in respond.headers:
            headers.append((name.decode("latin-1"), value.decode("latin-1")))
        start_response(_STATUS_LINES.get(status) or status_line(status), headers)
        stream = respond.stream
        if stream is None:
            body = respond.body
            chunks: Iterable[bytes] = (body,) if body else ()
        else:
            chunks = iterate_in(context, iterate_sync(stream, self._run_coroutine))
        return ResponseBody(self, exchange, respond, chunks, context)

    def _start(self) -> None:
        """First request in this process: run the app's lifespan startup, if it has one.

        WSGI has no lifespan protocol, so startup happens lazily here and shutdown
        at process exit, after the background tasks have drained. If the startup
        fails, the request fails (the server answers 500) and the next one retries.
        """
        with self._start_lock:
            pid = _wsgi_process.current_pid()
            if self._started_in == pid:
                return
            _wsgi_process.find_server()
            if _wsgi_process.has_lifespan(self.app):
                _wsgi_process.enter_lifespan(self.app)
            self._started_in = pid


class MountingWSGIAdapter(WSGIAdapter):
    """`app.wsgi` for an app with WSGI apps mounted: a request no route takes whose path
    lies under such a mount goes to that app, with the mount's prefix moved from
    `PATH_INFO` to `SCRIPT_NAME` (PEP 3333); everything else to the core.

    Apps without such mounts get the plain `WSGIAdapter`, and pay nothing for this.
    """

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        found = self.app.find_mount(
            environ["REQUEST_METHOD"], path if path.isascii() else _wsgi_str(path)
        )
        if found is None or found[0].kind != WSGI:
            return super().__call__(environ, start_response)
        mount, prefix, rest = found
        if self._started_in != _wsgi_process.PID:
            self._start()  # the parent's lifespan (and its mounted apps') before any request
        inner = dict(environ)
        # The prefix as the environ spells it (latin-1 "bytes in a str"), not decoded.
        raw_prefix = prefix.encode("utf-8").decode("latin-1")
        inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + raw_prefix
        inner["PATH_INFO"] = path[len(raw_prefix) :]
        result: Iterable[bytes] = mount.app(inner, start_response)
        return result


class ResponseBody:
    """The iterable a WSGI server gets: the body's chunks, and `close()` to finish the exchange.

    It is complete only once iterated to its end: the server asks for the next
    chunk after writing the last one. (Iterating is a generator delegating to
    the chunks, so the server's loop runs at C speed.) `close()` releases the
    tasks (or abandons them, if incomplete): it does the adapter's part after
    the response, in place, as it runs on every request.
    """

    __slots__ = ("_adapter", "_exchange", "_respond", "_chunks", "_context", "complete", "_closed")

    def __init__(
        self,
        adapter: WSGIAdapter,
        exchange: Exchange,
        respond: Respond,
        chunks: Iterable[bytes],
        context: contextvars.Context,
    ) -> None:
        self._adapter = adapter
        self._context = context
        self._exchange = exchange
        self._respond = respond
        self._chunks = chunks
        #: True once every chunk has been taken by the server.
        self.complete = False
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        self.complete = True

    def close(self) -> None:
        """Called by the server when done (after errors and disconnects too); never raises."""
        if self._closed:
            return
        self._closed = True
        if not self.complete:
            try:
                self._close_stream()
            except Exception:  # the stream's own cleanup failed; the exchange still ends
                head = self._exchange.head
                logger.exception("Closing the stream of %s %s failed", head.method, head.path)
        # In the request's context: a dependency's cleanup may reset a ContextVar with
        # the token it got when it set it, which only works in the context that set it.
        self._context.run(self._finish)

    def _finish(self) -> None:
        exchange = self._exchange
        try:
            if not self.complete:
                effect = exchange.throw(ClientDisconnected())  # the core logs tasks abandoned
            else:
                runner = self._adapter.runner
                tasks = self._respond.tasks
                if runner is not None and tasks:
                    runner.submit(exchange, tasks)
                    if not runner.paused and not self._adapter.app.tasks.has_room():
                        runner.paused = True
                    return
                # Inline mode, or only dependency cleanup left (usually nothing).
                effect = exchange.send(None)
            if type(effect) is not Done:  # usually it is: nothing was left to do
                drive_sync(
                    exchange,
                    effect,
                    read_body=_no_body,
                    run_coroutine=self._adapter._run_coroutine,
                )
        except Exception:
            head = exchange.head
            logger.exception("Finishing %s %s failed", head.method, head.path)

    def _close_stream(self) -> None:
        """Let a stream the server stopped reading run its own cleanup (finally blocks)."""
        # The generator the server iterates is suspended in the chunks' iterator
        # (or never started): closing that iterator runs the stream's cleanup (in the
        # request's context: `iterate_in` closes it there).
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        stream = self._respond.stream
        if stream is not None and stream.is_async:
            aclose = getattr(stream.iterator, "aclose", None)
            if aclose is not None:
                self._context.run(self._adapter._run_coroutine, aclose())


def refuse_asgi_middleware(app: Application) -> None:
    """Fail at startup, naming it, if the app has pure ASGI middleware (WSGI cannot run it)."""
    asgi = app.asgi_middleware
    if asgi:
        names = ", ".join(callable_name(middleware) for middleware, _, _ in asgi)
        raise DeclarationError(
            f"the app has ASGI middleware ({names}), which cannot run under WSGI (app.wsgi): "
            "serve it over ASGI (uvicorn) or use VelociPy's middleware instead"
        )


def request_head(environ: Environ) -> RequestHead:
    """The core's view of a request from a PEP 3333 environ.

    Paths arrive as latin-1 "bytes in a str" (PEP 3333) and are decoded as UTF-8;
    header names come from `HTTP_*` keys plus `CONTENT_TYPE` and `CONTENT_LENGTH`,
    lower-cased, as the core wants them.
    """
    # Which keys are headers depends only on the environ's keys, in order, and a
    # server builds them the same way for every request of the same shape (same
    # client, same headers): look the shape up instead of testing each of ~25 keys
    # in Python. `tuple(environ)` and its hash run in C.
    shape = tuple(environ)
    plan = _PLANS.get(shape)
    if plan is None:
        plan = _plan(shape)
    header_keys, content_keys = plan
    headers = []  # a loop, not a comprehension: no function object per request
    for key, name in header_keys:
        headers.append((name, environ[key].encode("latin-1")))
    for key, name in content_keys:  # CONTENT_TYPE, CONTENT_LENGTH: only when not empty
        value = environ[key]
        if value:
            headers.append((name, value.encode("latin-1")))
    # The same few addresses and protocols come back request after request (one
    # server, keep-alive clients): memos spare converting them each time.
    client_key = (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
    client = _ADDRESSES.get(client_key)
    if client is None:
        client = _address(client_key)
    server_key = (environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
    server = _ADDRESSES.get(server_key)
    if server is None:
        server = _address(server_key)
    protocol: str = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    version = _VERSIONS.get(protocol)
    if version is None:
        version = protocol[5:] if protocol[:5] == "HTTP/" else protocol
    path: str = environ.get("PATH_INFO", "")
    root_path: str = environ.get("SCRIPT_NAME", "")
    return RequestHead(
        environ["REQUEST_METHOD"],
        (path if path.isascii() else _wsgi_str(path)) or "/",
        environ.get("QUERY_STRING", "").encode("latin-1"),
        headers,
        version,
        environ.get("wsgi.url_scheme", "http"),
        client,
        server,
        root_path if root_path.isascii() else _wsgi_str(root_path),
    )


#: A plan: (key, header name) of each `HTTP_*` key, and of `CONTENT_TYPE`/`CONTENT_LENGTH`.
_Plan = tuple[tuple[tuple[str, bytes], ...], tuple[tuple[str, bytes], ...]]

#: environ shape (its keys, in order) -> its plan. Learnt as shapes are seen, up to
#: `_MAX_PLANS`: clients sending ever new header sets must not grow it forever (past
#: the cap, new shapes are worked out on every request).
_PLANS: dict[tuple[str, ...], _Plan] = {}
_MAX_PLANS = 256
_CONTENT_HEADERS = {"CONTENT_TYPE": b"content-type", "CONTENT_LENGTH": b"content-length"}


def _plan(shape: tuple[str, ...]) -> _Plan:
    plan = (
        tuple(
            (key, key[5:].replace("_", "-").lower().encode("latin-1"))
            for key in shape
            if key[:5] == "HTTP_"
        ),
        tuple((key, name) for key, name in _CONTENT_HEADERS.items() if key in shape),
    )
    if len(_PLANS) < _MAX_PLANS:
        _PLANS[shape] = plan
    return plan


def _wsgi_str(value: str) -> str:
    """A PEP 3333 native string (latin-1 code points standing for bytes) decoded as UTF-8."""
    if value.isascii():
        return value
    return value.encode("latin-1").decode("utf-8", "replace")


#: (host, port as in the environ) -> address, for client and server; emptied when full.
_ADDRESSES: dict[tuple[Any, Any], tuple[str, int]] = {}
_MAX_ADDRESSES = 1024

#: SERVER_PROTOCOL -> the core's http_version, for the usual ones.
_VERSIONS = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0"}


def _address(key: tuple[Any, Any]) -> tuple[str, int] | None:
    host, port = key
    if not host:
        return None
    try:
        address = host, int(port)
    except (TypeError, ValueError):
        address = host, 0
    if len(_ADDRESSES) >= _MAX_ADDRESSES:
        _ADDRESSES.clear()
    _ADDRESSES[key] = address
    return address


_STATUS_LINES: dict[int, str] = {}


def status_line(status: int) -> str:
    """`"200 OK"` for 200: the status line WSGI's `start_response` takes."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"{status} {reason_phrase(status) or 'Unknown'}"
    return line


def _read_body(environ: Environ, limit: int, size: int = 0) -> Any:
    """The request body from `wsgi.input`, capped at `limit`: the driver's `read_body`
    (with `environ` bound by `functools.partial`).

    With `size` (`ReadChunk`): the next piece of at most `size` bytes, as
    `(data, more)`. The core asks for no more than a declared length and
    counts against its limit itself.
    """
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH")
    if size:
        if not declared and not environ.get("wsgi.input_terminated"):
            return b"", False  # neither a length nor a terminated stream: no body
        piece = _read(stream, size)
        return piece, bool(piece)
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise ClientError("Invalid Content-Length header") from None
        if length < 0:
            raise ClientError("Invalid Content-Length header")
        if length > limit:
            raise BodyTooLarge(limit)
        if not length:
            return b""
        body = _read(stream, length)
        while len(body) < length:  # a short read is allowed; an empty one means EOF
            more = _read(stream, length - len(body))
            if not more:
                raise ClientDisconnected()
            body += more
        return body
    if environ.get("wsgi.input_terminated"):  # chunked: read to the end, up to the cap
        parts: list[bytes] = []
        size = 0
        while True:
            part = _read(stream, _READ_CHUNK)
            if not part:
                return b"".join(parts)
            size += len(part)
            if size > limit:
                raise BodyTooLarge(limit)
            parts.append(part)
    return b""


def _read(stream: Any, size: int) -> bytes:
    try:
        data: bytes = stream.read(size)
    except (OSError, ValueError) as error:  # the connection broke mid-body
        raise ClientDisconnected() from error
    return data


def _no_body(limit: int) -> bytes:  # pragma: no cover - the body was read before Respond
    raise RuntimeError("the request body was already read")
