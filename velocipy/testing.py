"""`TestClient`: call a VelociPy app in-process, with no sockets, as tests want.

It drives the core with the sync driver: sync user code runs in the test's
thread, async code on an event loop in a helper thread (an anyio blocking
portal, one per request, or one for the whole `with TestClient(app)` block,
which also runs the app's lifespan). By the time `client.post(...)` returns,
the request's background tasks have run, unless `run_tasks=False` asked to
capture them instead: then `response.tasks` lists them and
`response.run_tasks()` runs them later.
"""

from __future__ import annotations

import contextlib
import functools
import json as jsonlib
import logging
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import anyio.from_thread

from velocipy.adapters._drive import RunCoroutine, await_coroutine, drive_sync, iterate_sync
from velocipy.core import (
    Application,
    BodyTooLarge,
    Done,
    Exchange,
    Headers,
    RequestHead,
    Respond,
    Task,
    encode_json,
)

logger = logging.getLogger("velocipy")

Params = Mapping[str, Any] | list[tuple[str, Any]] | None


class TestResponse:
    """What the app answered: status, headers (case-insensitive), body, and its tasks."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        status_code: int,
        raw_headers: list[tuple[bytes, bytes]],
        content: bytes,
        tasks: tuple[Task, ...],
        pending: _PendingTasks | None,
    ) -> None:
        self.status_code = status_code
        self.headers = Headers(raw_headers)
        self.content = content
        #: The background tasks the request scheduled, in order.
        self.tasks = tasks
        self._pending = pending

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def run_tasks(self) -> None:
        """Run the tasks captured with `run_tasks=False` (and the dependencies' cleanup)."""
        if self._pending is None:
            raise RuntimeError("no captured tasks: the request was made with run_tasks=True")
        pending, self._pending = self._pending, None
        pending.run()

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code}]>"


class _PendingTasks:
    """The rest of an exchange after its response: tasks and cleanup, run on demand."""

    def __init__(self, client: TestClient, exchange: Exchange) -> None:
        self._client = client
        self._exchange = exchange

    def run(self) -> None:
        with self._client._portal() as portal:
            drive_sync(
                self._exchange,
                self._exchange.send(None),
                read_body=_no_body,
                run_coroutine=portal,
            )


def _no_body(limit: int) -> bytes:
    raise RuntimeError("the body was already read")


class TestClient:
    """An in-process client for a VelociPy app.

    Args:
        app: The application.
        base_url: Scheme and host the requests appear to come to.
        raise_server_exceptions: Re-raise an unhandled handler exception in the
            test instead of returning the 500 response (as Starlette's does).
        client: The `(host, port)` the requests appear to come from.
    """

    __test__ = False

    def __init__(
        self,
        app: Application,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
        cookies: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        parts = urlsplit(base_url)
        self.scheme = parts.scheme or "http"
        self.host = parts.netloc or "testserver"
        self.raise_server_exceptions = raise_server_exceptions
        self.client = client
        self.cookies: dict[str, str] = dict(cookies or {})
        self._shared_portal: anyio.from_thread.BlockingPortal | None = None
        self._stack: contextlib.ExitStack | None = None

    # -- lifespan -------------------------------------------------------------------------

    def __enter__(self) -> TestClient:
        stack = contextlib.ExitStack()
        portal = stack.enter_context(anyio.from_thread.start_blocking_portal())
        stack.enter_context(portal.wrap_async_context_manager(self.app.lifespan_context()))
        self._shared_portal = portal
        self._stack = stack
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._shared_portal = None
        if stack is not None:
            stack.__exit__(exc_type, exc, tb)

    @contextlib.contextmanager
    def _portal(self) -> Iterator[RunCoroutine]:
        """A way to run coroutines: the lifespan's portal, or one for this request alone."""
        if self._shared_portal is not None:
            yield functools.partial(self._shared_portal.call, await_coroutine)
        else:
            with anyio.from_thread.start_blocking_portal() as portal:
                yield functools.partial(portal.call, await_coroutine)

    # -- requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        data: Mapping[str, Any] | None = None,
        run_tasks: bool = True,
    ) -> TestResponse:
        """Send one request through the app and return its response.

        With `run_tasks=False` the request's background tasks are not run:
        `response.tasks` lists them and `response.run_tasks()` runs them.
        """
        head, body = self._build(method, url, params, headers, cookies, json, content, data)
        exchange = self.app.exchange(head)

        def read_body(limit: int) -> bytes:
            if len(body) > limit:
                raise BodyTooLarge(limit)
            return body

        with self._portal() as portal:
            effect = drive_sync(
                exchange, exchange.start(), read_body=read_body, run_coroutine=portal
            )
            if isinstance(effect, Done):  # pragma: no cover - the core always responds first
                raise RuntimeError("the exchange ended without a response")
            respond: Respond = effect
            content_bytes = respond.body
            if respond.stream is not None:
                content_bytes = b"".join(iterate_sync(respond.stream, portal))
            pending = _PendingTasks(self, exchange)
            if run_tasks:
                pending.run()
                pending_for_response = None
            else:
                pending_for_response = pending
        if respond.error is not None and self.raise_server_exceptions:
            raise respond.error
        self._remember_cookies(respond.headers)
        return TestResponse(
            respond.status, respond.headers, content_bytes, respond.tasks, pending_for_response
        )

    def _build(
        self,
        method: str,
        url: str,
        params: Params,
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
        json: Any,
        content: bytes | str | None,
        data: Mapping[str, Any] | None,
    ) -> tuple[RequestHead, bytes]:
        parts = urlsplit(url)
        host = parts.netloc or self.host
        query = parts.query
        if params:
            extra = urlencode(
                list(params.items()) if isinstance(params, Mapping) else params, doseq=True
            )
            query = f"{query}&{extra}" if query else extra
        raw: list[tuple[bytes, bytes]] = [
            (b"host", host.encode("latin-1")),
            (b"user-agent", b"velocipy-testclient"),
        ]
        body = b""
        content_type: str | None = None
        if json is not None:
            body, content_type = encode_json(json), "application/json"
        elif data is not None:
            body = urlencode(data, doseq=True).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        elif content is not None:
            body = content.encode("utf-8") if isinstance(content, str) else content
        given = {k.lower(): v for k, v in (headers or {}).items()}
        if content_type and "content-type" not in given:
            raw.append((b"content-type", content_type.encode("latin-1")))
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            raw.append((b"content-length", str(len(body)).encode("latin-1")))
        jar = {**self.cookies, **(cookies or {})}
        if jar and "cookie" not in given:
            raw.append((b"cookie", "; ".join(f"{k}={v}" for k, v in jar.items()).encode()))
        for name, value in given.items():
            raw = [(k, v) for k, v in raw if k != name.encode("latin-1")]
            raw.append((name.encode("latin-1"), str(value).encode("latin-1")))
        head = RequestHead(
            method=method.upper(),
            path=parts.path or "/",
            query_string=query.encode("latin-1"),
            headers=tuple(raw),
            scheme=parts.scheme or self.scheme,
            client=self.client,
            server=(host.split(":")[0], 80),
        )
        return head, body

    def _remember_cookies(self, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b"set-cookie":
                pair = value.decode("latin-1").split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.cookies[key.strip()] = val.strip()

    def get(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> TestResponse:
        return self.request("OPTIONS", url, **kwargs)
