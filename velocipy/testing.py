"""`TestClient`: an `httpx.Client` that calls a VelociPy app in-process, with no sockets.

Built the way Starlette's is: the client *is* an `httpx.Client`, so request
building (`params=`, `json=`, `data=`, `files=`, `content=`), the cookie jar,
redirects, `auth=` and `client.stream(...)` are httpx's own; all the in-process
work lives in one transport, `CoreTransport`, whose `handle_request` turns an
`httpx.Request` into an exchange of the core and the exchange's answer into an
`httpx.Response`.

The transport drives the core with the sync driver: sync user code runs in the
test's thread, async code on an event loop in a helper thread (an anyio
blocking portal, one per request, or one for the whole `with TestClient(app)`
block, which also runs the app's lifespan). By the time `client.post(...)`
returns, the request's background tasks have run, unless `run_tasks=False`
asked to capture them instead: then `response.tasks` lists them and
`response.run_tasks()` runs them later.

When the app's task backend is a queue (Celery, Dramatiq), nothing reaches the
broker: each published batch is recorded (`response.envelopes`, the JSON a
worker would receive), then run through the worker's own path (import by name,
rebuild the arguments, run), so a task that could not travel fails here as it
would in production. `TestClient(app, record_tasks=False)` publishes for real.

A streamed response (`StreamingResponse`) is handed to httpx as a stream
that pulls the app's chunks as the test reads them: with
`client.stream(...)` a test sees the first chunk before the app made the
next, as a real client would (Starlette's TestClient buffers the whole body
first). The request's tasks run once the last chunk was read, when httpx
closes the stream; a stream closed early is a client gone: the tasks are
abandoned and logged, as on a server. `client.get(...)` reads the body whole,
so by the time it returns the tasks have run, as before.

`AsyncCoreTransport` does the same for `httpx.AsyncClient`, with the async
driver, so async tests need no ASGI layer in between.

httpx is an optional dependency: `pip install 'velocipy[testing]'`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio.from_thread
import anyio.to_thread

try:
    import httpx
except ImportError as missing:  # pragma: no cover - exercised only without the extra
    raise ImportError("velocipy.testing needs httpx: pip install 'velocipy[testing]'") from missing

from velocipy.adapters._carry import guarded, unwrap_carried
from velocipy.adapters._contexts import iterate_in
from velocipy.adapters._drive import (
    RunCoroutine,
    call_now,
    drive_async,
    drive_sync,
    iterate_async,
    iterate_sync,
)
from velocipy.core import (
    Application,
    BodyTooLarge,
    Call,
    ClientDisconnected,
    Done,
    Exchange,
    RecordingBackend,
    RequestHead,
    Respond,
    Task,
)

__all__ = ["AsyncCoreTransport", "CoreTransport", "TestClient", "TestResponse"]

#: The request extension that carries `run_tasks=False` from `request()` to the transport.
_RUN_TASKS = "velocipy.run_tasks"


class TestResponse(httpx.Response):
    """An `httpx.Response`, plus the request's background tasks.

    `tasks` lists the tasks the request scheduled, in order. With
    `run_tasks=False` they have not run yet: `run_tasks()` runs them (and the
    dependencies' cleanup).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        status_code: int,
        *,
        headers: list[tuple[bytes, bytes]],
        content: bytes | None = None,
        tasks: tuple[Task, ...],
        pending: _PendingTasks | None,
        recorder: RecordingBackend | None = None,
        stream: httpx.SyncByteStream | httpx.AsyncByteStream | None = None,
    ) -> None:
        super().__init__(status_code, headers=headers, content=content, stream=stream)
        #: The app's streamed body, if it is one (httpx wraps `stream` in a stream of its own).
        self._app_stream = stream
        #: The background tasks the request scheduled, in order.
        self.tasks = tasks
        self._pending = pending
        self._recorder = recorder

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """With a queue backend: the envelopes published so far, as a worker gets them."""
        return self._recorder.envelopes if self._recorder is not None else []

    def run_tasks(self) -> None:
        """Run the tasks captured with `run_tasks=False` (and the dependencies' cleanup)."""
        if self._pending is None and isinstance(self._app_stream, _AppStream):
            self._pending = self._app_stream.pending  # kept when the streamed body ended
        if self._pending is None:
            raise RuntimeError("no captured tasks: the request was made with run_tasks=True")
        pending, self._pending = self._pending, None
        pending.run()

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code}]>"


class _PendingTasks:
    """The rest of an exchange after its response: tasks and cleanup, run on demand."""

    def __init__(
        self,
        transport: CoreTransport,
        exchange: Exchange,
        recorder: RecordingBackend | None,
        context: contextvars.Context,
    ) -> None:
        self._transport = transport
        self.exchange = exchange
        self._recorder = recorder
        #: The request's context: its dependencies' cleanup runs there, where they set things.
        self.context = context

    def run(self) -> None:
        self.context.run(self.run_here)

    def run_here(self) -> None:
        """`run`, from inside the request's context."""
        with self._transport.portal() as portal, publishing_to(self._transport.app, self._recorder):
            drive_sync(
                self.exchange,
                self.exchange.send(None),
                read_body=_no_body,
                run_coroutine=portal,
            )
        if self._recorder is not None:
            run_recorded(self._recorder, self._transport.app)


def recorder_for(app: Application, record_tasks: bool) -> RecordingBackend | None:
    """A recorder standing in for the app's queue backend, if it has one and we record."""
    queue = app.task_queue
    return RecordingBackend(wraps=queue) if queue is not None and record_tasks else None


@contextlib.contextmanager
def publishing_to(app: Application, recorder: RecordingBackend | None) -> Iterator[None]:
    """Send the app's published batches to `recorder` meanwhile (None: leave them be)."""
    if recorder is None:
        queue = app.task_queue
        if queue is None or not queue.detaches:
            yield
            return
        # The real backend: a test reads the tasks' states once the response is back,
        # and a per-request event loop ends with it, so each publish is waited for.
        detaches, queue.detaches = queue.detaches, False
        try:
            yield
        finally:
            queue.detaches = detaches
        return
    original = app.task_queue
    app.task_queue = recorder
    try:
        yield
    finally:
        app.task_queue = original


def run_recorded(recorder: RecordingBackend, app: Application) -> None:
    """Do what a worker would do with the recorded batches: import by name, rebuild, run."""
    from velocipy.tasks import run_next

    batches, recorder.ran = recorder.batches[recorder.ran :], len(recorder.batches)
    for batch in batches:
        # As a worker does: one task per message, the rest forwarded as the next one.
        messages: list[Sequence[Mapping[str, Any]]] = [batch]
        while messages:
            run_next(messages.pop(), forward=messages.append, hooks=app.task_error_hooks)


def _no_body(limit: int) -> bytes:
    raise RuntimeError("the body was already read")


def _runner(portal: anyio.from_thread.BlockingPortal) -> RunCoroutine:
    """Run coroutines on `portal`'s loop; a task's `SystemExit` must not stop that loop."""

    def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        return unwrap_carried(functools.partial(portal.call, guarded, coroutine))

    return run


def head_from_request(
    request: httpx.Request, client: tuple[str, int] | None, root_path: str = ""
) -> RequestHead:
    """The core's `RequestHead` for an httpx request (names lower-cased, as the core wants)."""
    url = request.url
    port = url.port or (443 if url.scheme == "https" else 80)
    return RequestHead(
        method=request.method,
        path=url.path,
        query_string=url.query,
        headers=tuple((name.lower(), value) for name, value in request.headers.raw),
        scheme=url.scheme,
        client=client,
        server=(url.host, port),
        root_path=root_path,
    )


def _body_reader(request: httpx.Request) -> Any:
    """`read_body` for the sync driver: the whole body, or its next piece, from the request.

    httpx streams a `files=` upload from the file in pieces, so a large upload
    goes through the app piece by piece here too, as on a real server; a piece
    larger than the core asks for is handed over in parts of that size.
    """
    pieces = iter(request.stream)  # type: ignore[arg-type]
    left = _Leftover()

    def read_body(limit: int, size: int = 0) -> Any:
        if size:
            if left.data:
                return left.take(size), True
            for piece in pieces:
                if piece:
                    left.data = piece
                    return left.take(size), True
            return b"", False
        chunks = [left.data] if left.data else []
        total = len(left.data)
        left.data = b""
        for chunk in pieces:
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    return read_body


class _Leftover:
    """What is left of a piece after the core took the `size` bytes it asked for."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def take(self, size: int) -> bytes:
        piece, self.data = self.data[:size], self.data[size:]
        return piece


class CoreTransport(httpx.BaseTransport):
    """An httpx transport that serves each request by driving the app's core in-process.

    Args:
        app: The application.
        raise_server_exceptions: Re-raise an unhandled handler exception in the
            test (after the response's tasks) instead of returning the 500.
        client: The `(host, port)` the requests appear to come from.
        root_path: The ASGI-style `root_path` the app appears mounted at.
        record_tasks: With a queue backend, record published batches and run
            them through the worker's path instead of publishing to the broker.
        backend: The anyio backend async code runs on ("asyncio" or "trio").
        backend_options: Options for that backend (anyio's `backend_options`).
    """

    def __init__(
        self,
        app: Application,
        *,
        raise_server_exceptions: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        root_path: str = "",
        record_tasks: bool = True,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self.client = client
        self.root_path = root_path
        self.record_tasks = record_tasks
        self.backend = backend
        self.backend_options = backend_options
        #: Set while a `with TestClient(app)` block runs: its portal runs every coroutine.
        self.shared_portal: anyio.from_thread.BlockingPortal | None = None

    @contextlib.contextmanager
    def portal(self) -> Iterator[RunCoroutine]:
        """A way to run coroutines: the lifespan's portal, or one for this request alone."""
        if self.shared_portal is not None:
            yield _runner(self.shared_portal)
        else:
            with self.new_portal() as portal:
                yield _runner(portal)

    def new_portal(self) -> contextlib.AbstractContextManager[anyio.from_thread.BlockingPortal]:
        """An event loop in a helper thread, on the client's anyio backend."""
        return anyio.from_thread.start_blocking_portal(self.backend, self.backend_options)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.app.needs_asgi:  # ASGI middleware or mounts: only the ASGI entry runs them
            return self._through_asgi(request)
        if self.app.mounts and self._wsgi_mount(request):
            return self._through_wsgi(request)
        # Each request in a context of its own, as on a server: what a handler sets in a
        # ContextVar dies with its request instead of changing the test's own context.
        context = contextvars.copy_context()
        return context.run(self._through_core, request, context)

    def _through_core(self, request: httpx.Request, context: contextvars.Context) -> TestResponse:
        exchange = self.app.exchange(head_from_request(request, self.client, self.root_path))
        recorder = recorder_for(self.app, self.record_tasks)
        held = contextlib.ExitStack()
        with held:
            portal = held.enter_context(self.portal())
            held.enter_context(publishing_to(self.app, recorder))
            effect = drive_sync(
                exchange,
                exchange.start(),
                read_body=_body_reader(request),
                run_coroutine=portal,
            )
            if isinstance(effect, Done):  # pragma: no cover - the core always responds first
                raise RuntimeError("the exchange ended without a response")
            respond: Respond = effect
            rest = _PendingTasks(self, exchange, recorder, context)
            run_now = request.extensions.get(_RUN_TASKS, True)
            if respond.stream is not None and respond.error is None:
                # Pulled as the test reads it; the portal stays open until then.
                stream = _AppStream(
                    iterate_in(context, iterate_sync(respond.stream, portal)),
                    rest,
                    run_now,
                    portal,
                    held.pop_all(),
                )
                return TestResponse(
                    respond.status,
                    headers=respond.headers,
                    stream=stream,
                    tasks=respond.tasks,
                    pending=None,
                    recorder=recorder,
                )
            content = respond.body
            if respond.stream is not None:
                content = b"".join(iterate_sync(respond.stream, portal))
            pending: _PendingTasks | None = rest
            if run_now:
                rest.run_here()  # in the request's context already
                pending = None
        if respond.error is not None and self.raise_server_exceptions:
            raise respond.error
        return TestResponse(
            respond.status,
            headers=respond.headers,
            content=content,
            tasks=respond.tasks,
            pending=pending,
            recorder=recorder,
        )

    def _wsgi_mount(self, request: httpx.Request) -> bool:
        """Whether `request` goes to a WSGI app mounted in the app."""
        found = self.app.find_mount(request.method, request.url.path)
        return found is not None and found[0].kind == "wsgi"

    def _through_wsgi(self, request: httpx.Request) -> httpx.Response:
        """Serve `request` through `app.wsgi`, which hands it to the mounted WSGI app."""
        transport = httpx.WSGITransport(
            app=self.app.wsgi,  # type: ignore[attr-defined]
            raise_app_exceptions=self.raise_server_exceptions,
            script_name=self.root_path,
        )
        answer = transport.handle_request(request)
        content = answer.read()
        return TestResponse(
            answer.status_code, headers=answer.headers.raw, content=content, tasks=(), pending=None
        )

    def _through_asgi(self, request: httpx.Request) -> httpx.Response:
        """Serve `request` through the app's ASGI entry point, for its pure ASGI middleware.

        Such middleware only exists around the ASGI entry point (see `add_middleware`),
        so the client goes through it too, with httpx's ASGI transport on the portal.
        """
        body = request.read()
        transport = httpx.ASGITransport(
            app=self.app,  # type: ignore[arg-type]
            raise_app_exceptions=self.raise_server_exceptions,
            root_path=self.root_path,
            client=self.client,
        )

        async def serve() -> httpx.Response:
            again = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            answer = await transport.handle_async_request(again)
            raw = b"".join([chunk async for chunk in answer.aiter_raw()])
            await answer.aclose()
            return TestResponse(
                answer.status_code, headers=answer.headers.raw, content=raw, tasks=(), pending=None
            )

        with self.portal() as portal:
            return portal(serve())  # type: ignore[no-any-return]


class _AppStream(httpx.SyncByteStream):
    """A streamed response body, pulled from the app chunk by chunk as the test reads it.

    Closing it settles the exchange: read to its end, the response counts as
    delivered and the tasks run (or are kept for `response.run_tasks()`);
    closed before, the client is gone and the tasks are abandoned.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        pending: _PendingTasks,
        run_now: bool,
        portal: RunCoroutine,
        held: contextlib.ExitStack,
    ) -> None:
        self._chunks = chunks
        self._run_now = run_now
        self._portal = portal
        self._held = held
        self._complete = False
        self._closed = False
        #: The tasks kept for `response.run_tasks()` (with `run_tasks=False`), once read.
        self.pending: _PendingTasks | None = pending

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks
        self._complete = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending = self.pending
        assert pending is not None
        with self._held:  # the portal and the recorder, let go of last
            if not self._complete:
                self.pending = None
                close = getattr(self._chunks, "close", None)
                if close is not None:
                    close()
                pending.context.run(self._abandon, pending.exchange)
            elif self._run_now:
                self.pending = None
                pending.run()

    def _abandon(self, exchange: Exchange) -> None:
        after = exchange.throw(ClientDisconnected())
        if not isinstance(after, Done):  # the cleanup of generator dependencies
            drive_sync(exchange, after, read_body=_no_body, run_coroutine=self._portal)


class TestClient(httpx.Client):
    """An in-process client for a VelociPy app: an `httpx.Client` with the app as its server.

    Everything `httpx.Client` takes and does works (`files=`, `data=`, `json=`,
    `content=`, `params=`, `auth=`, cookies, redirects, `stream()`); responses
    are `TestResponse`, an `httpx.Response` with the request's `tasks`.
    Each request method also takes `run_tasks=False` to capture the request's
    background tasks instead of running them before the call returns.

    Args:
        app: The application.
        base_url: Scheme and host the requests appear to go to.
        raise_server_exceptions: Re-raise an unhandled handler exception in the
            test instead of returning the 500 response (as Starlette's does).
        root_path: The `root_path` the app appears mounted at.
        cookies: Cookies to start the client's jar with.
        headers: Default headers (a dict or a list of pairs).
        follow_redirects: Follow redirects (True by default, as Starlette's).
        client: The `(host, port)` the requests appear to come from.
        record_tasks: With a queue backend (docs/task-queues.md), record the
            published batches (`response.envelopes`) and run them through the
            worker's path, instead of publishing to the broker (True by default).
        backend: The anyio backend the app's async code runs on, as Starlette's
            ("asyncio" by default, or "trio").
        backend_options: anyio's options for that backend.
        **kwargs: Passed on to `httpx.Client` (`auth=`, `params=`, `timeout=`, ...).
    """

    __test__ = False

    def __init__(
        self,
        app: Application,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        cookies: Any = None,
        headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        record_tasks: bool = True,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self._transport_to_app = CoreTransport(
            app,
            raise_server_exceptions=raise_server_exceptions,
            client=client,
            root_path=root_path,
            record_tasks=record_tasks,
            backend=backend,
            backend_options=backend_options,
        )
        default_headers = httpx.Headers({"user-agent": "velocipy-testclient"})
        if headers is not None:
            default_headers.update(httpx.Headers(headers))
        super().__init__(
            base_url=base_url,
            headers=default_headers,
            cookies=cookies,
            follow_redirects=follow_redirects,
            transport=self._transport_to_app,
            **kwargs,
        )
        self._stack: contextlib.ExitStack | None = None

    @property
    def raise_server_exceptions(self) -> bool:
        return self._transport_to_app.raise_server_exceptions

    @raise_server_exceptions.setter
    def raise_server_exceptions(self, value: bool) -> None:
        self._transport_to_app.raise_server_exceptions = value

    # -- lifespan -------------------------------------------------------------------------

    def __enter__(self) -> TestClient:
        """Start the app's lifespan; requests in the block share its event loop."""
        stack = contextlib.ExitStack()
        portal = stack.enter_context(self._transport_to_app.new_portal())
        stack.enter_context(portal.wrap_async_context_manager(self.app.lifespan_context()))
        self._transport_to_app.shared_portal = portal
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        # Like Starlette's, the client stays usable after the block (httpx's own
        # `__exit__` would close it for good); only the lifespan ends here.
        stack, self._stack = self._stack, None
        self._transport_to_app.shared_portal = None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)

    # -- requests: httpx's, plus `run_tasks` ---------------------------------------------

    def build_request(
        self, method: str, url: httpx.URL | str, *, params: Any = None, **kwargs: Any
    ) -> httpx.Request:
        """httpx's `build_request`, except that `params=` adds to a query in `url`.

        httpx 0.28 drops the URL's own query when `params=` is given; a test that
        writes `client.get("/items?a=1", params={"b": 2})` means both.
        """
        if params is not None:
            target = httpx.URL(url)
            if target.query:
                given = httpx.QueryParams(params).multi_items()
                params = [*httpx.QueryParams(target.query.decode("ascii")).multi_items(), *given]
                url = target.copy_with(query=None)
        return super().build_request(method, url, params=params, **kwargs)

    def request(
        self, method: str, url: httpx.URL | str, *, run_tasks: bool = True, **kwargs: Any
    ) -> TestResponse:
        """Send one request through the app and return its response.

        Takes what `httpx.Client.request` takes. With `run_tasks=False` the
        request's background tasks are not run: `response.tasks` lists them and
        `response.run_tasks()` runs them.
        """
        if not run_tasks:
            kwargs["extensions"] = {**(kwargs.get("extensions") or {}), _RUN_TASKS: False}
        response = super().request(method, url, **kwargs)
        assert isinstance(response, TestResponse)
        return response

    def get(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: httpx.URL | str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)


class AsyncCoreTransport(httpx.AsyncBaseTransport):
    """An httpx transport for `httpx.AsyncClient` that drives the app's core directly.

    ``httpx.AsyncClient(transport=AsyncCoreTransport(app), base_url="http://testserver")``
    serves requests on the test's own event loop, with no ASGI layer: sync user
    code runs in worker threads, background tasks run before the call returns.
    The app's lifespan is not run: enter ``app.lifespan_context()`` around the
    client if the app needs it.

    Args:
        app: The application.
        raise_server_exceptions: Re-raise an unhandled handler exception in the
            test (after the response's tasks) instead of returning the 500.
        client: The `(host, port)` the requests appear to come from.
        root_path: The `root_path` the app appears mounted at.
    """

    def __init__(
        self,
        app: Application,
        *,
        raise_server_exceptions: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        root_path: str = "",
        record_tasks: bool = True,
    ) -> None:
        self.app = app
        self.raise_server_exceptions = raise_server_exceptions
        self.client = client
        self.root_path = root_path
        self.record_tasks = record_tasks

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.app.needs_asgi:  # ASGI middleware or mounts run around the ASGI entry only
            asgi = httpx.ASGITransport(
                app=self.app,  # type: ignore[arg-type]
                raise_app_exceptions=self.raise_server_exceptions,
                root_path=self.root_path,
                client=self.client,
            )
            return await asgi.handle_async_request(request)
        if self.app.mounts:
            found = self.app.find_mount(request.method, request.url.path)
            if found is not None and found[0].kind == "wsgi":
                # WSGI is blocking: `app.wsgi` hands it to the mounted app, in a thread.
                body = await request.aread()
                again = httpx.Request(
                    request.method, request.url, headers=request.headers, content=body
                )
                wsgi = httpx.WSGITransport(
                    app=self.app.wsgi,  # type: ignore[attr-defined]
                    raise_app_exceptions=self.raise_server_exceptions,
                    script_name=self.root_path,
                )
                answer = await anyio.to_thread.run_sync(wsgi.handle_request, again)
                content = await anyio.to_thread.run_sync(answer.read)
                return TestResponse(
                    answer.status_code,
                    headers=answer.headers.raw,
                    content=content,
                    tasks=(),
                    pending=None,
                )
        exchange = self.app.exchange(head_from_request(request, self.client, self.root_path))

        pieces = request.stream.__aiter__()  # type: ignore[union-attr]
        left = _Leftover()

        async def read_body(limit: int, size: int = 0) -> Any:
            if size:
                if left.data:
                    return left.take(size), True
                async for piece in pieces:
                    if piece:
                        left.data = piece
                        return left.take(size), True
                return b"", False
            chunks = [left.data] if left.data else []
            total = len(left.data)
            left.data = b""
            async for chunk in pieces:
                total += len(chunk)
                if total > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
            return b"".join(chunks)

        recorder = recorder_for(self.app, self.record_tasks)
        held = contextlib.ExitStack()
        with held:
            held.enter_context(publishing_to(self.app, recorder))
            effect = await drive_async(
                exchange, exchange.start(), read_body=read_body, run_sync=_run_sync
            )
            if isinstance(effect, Done):  # pragma: no cover - the core always responds first
                raise RuntimeError("the exchange ended without a response")
            respond: Respond = effect
            if respond.stream is not None and respond.error is None:
                stream = _AsyncAppStream(_chunks(respond, _run_sync), exchange, recorder, self.app)
                stream.held = held.pop_all()
                return TestResponse(
                    respond.status,
                    headers=respond.headers,
                    stream=stream,
                    tasks=respond.tasks,
                    pending=None,
                    recorder=recorder,
                )
            content = respond.body
            if respond.stream is not None:
                content = b"".join([chunk async for chunk in _chunks(respond, _run_sync)])
            await _settle(exchange, delivered=True)
        if recorder is not None:
            await anyio.to_thread.run_sync(run_recorded, recorder, self.app)
        if respond.error is not None and self.raise_server_exceptions:
            raise respond.error
        return TestResponse(
            respond.status,
            headers=respond.headers,
            content=content,
            tasks=respond.tasks,
            pending=None,
            recorder=recorder,
        )


async def _settle(exchange: Exchange, *, delivered: bool) -> None:
    """Resume an exchange after its response: its tasks and cleanup, or their abandonment."""
    after = exchange.send(None) if delivered else exchange.throw(ClientDisconnected())
    if not isinstance(after, Done):
        await drive_async(exchange, after, read_body=_no_body_async, run_sync=_run_sync)


class _AsyncAppStream(httpx.AsyncByteStream):
    """`_AppStream` for `AsyncCoreTransport`: the app's chunks pulled as the test reads them."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        exchange: Exchange,
        recorder: RecordingBackend | None,
        app: Application,
    ) -> None:
        self._chunks = chunks
        self._exchange = exchange
        self._recorder = recorder
        self._app = app
        self.held = contextlib.ExitStack()
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk
        self._complete = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self.held:
            if not self._complete:
                aclose = getattr(self._chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
            await _settle(self._exchange, delivered=self._complete)
        if self._recorder is not None:
            await anyio.to_thread.run_sync(run_recorded, self._recorder, self._app)


async def _run_sync(call: Call) -> Any:
    return await anyio.to_thread.run_sync(call_now, call)


def _chunks(respond: Respond, run_sync: Any) -> AsyncIterator[bytes]:
    assert respond.stream is not None
    return iterate_async(respond.stream, run_sync)


async def _no_body_async(limit: int) -> bytes:
    raise RuntimeError("the body was already read")
