"""The WSGI adapter in-process: hand-built environs, every response wrapped in wsgiref.validate.

No sockets here: `call()` plays the server (start_response, iterate, close), so
each test can also play a server that stops early, as gunicorn does on errors
and disconnects.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
import time
import wsgiref.validate
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest

from velocipy import (
    BackgroundTasks,
    Body,
    Depends,
    HTMLResponse,
    HTTPException,
    PlainTextResponse,
    Response,
    StreamingResponse,
    VelociPy,
)
from velocipy.adapters.wsgi import WSGIAdapter, request_head, status_line

WSGIApp = Callable[[dict[str, Any], Any], Any]


def environ(
    method: str = "GET",
    path: str = "/",
    *,
    body: bytes | None = None,
    query: str = "",
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
    chunked: bool = False,
) -> dict[str, Any]:
    """A PEP 3333 environ as a server would build it."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "REMOTE_PORT": "51000",
        "HTTP_HOST": "testserver:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body is not None:
        env["CONTENT_TYPE"] = content_type
        if chunked:
            env["wsgi.input_terminated"] = True
        else:
            env["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


@dataclass
class Reply:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    iterable: Any = field(repr=False, default=None)

    @property
    def code(self) -> int:
        return int(self.status.split()[0])

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    app: WSGIApp, env: dict[str, Any], *, stop_after: int | None = None, validate: bool = True
) -> Reply:
    """Serve `env` like a server: validated; `stop_after` chunks then give up (a disconnect).

    `validate=False` is for environs the validator itself rejects (a broken server).
    """
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    iterable = (wsgiref.validate.validator(app) if validate else app)(env, start_response)
    chunks: list[bytes] = []
    try:
        iterator = iter(iterable)
        while stop_after is None or len(chunks) < stop_after:
            try:
                chunks.append(next(iterator))
            except StopIteration:
                break
    finally:
        iterable.close()
    return Reply(seen["status"], seen["headers"], b"".join(chunks), iterable)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- the app under test --------------------------------------------------------------------

EVENTS: list[str] = []
GATE = threading.Event()


def record(name: str) -> None:
    EVENTS.append(name)


async def record_async(name: str) -> None:
    EVENTS.append(name)


def wait_for_gate(name: str) -> None:
    GATE.wait(5)
    EVENTS.append(name)


def session() -> Iterator[str]:
    EVENTS.append("session:open")
    yield "session"
    EVENTS.append("session:close")


async def async_resource() -> AsyncIterator[str]:
    yield "resource"
    EVENTS.append("resource:close")


def build_app() -> VelociPy:
    app = VelociPy(max_body_size=64)

    @app.get("/sync")
    def sync_handler() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    @app.get("/async")
    async def async_handler() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    @app.get("/html")
    def html() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>")

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse("plain")

    @app.get("/bytes")
    def raw() -> Response:
        return Response(b"\x00\x01", media_type="application/octet-stream")

    @app.delete("/nothing", status_code=204)
    def nothing() -> None:
        return None

    @app.get("/not-modified")
    def not_modified() -> Response:
        return Response(None, 304)

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a", b"b", b"c"]), media_type="text/plain")

    @app.get("/stream-async")
    async def stream_async() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for part in ("x", "y", "z"):
                yield part

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/echo-head")
    def echo_head(request_id: Annotated[str, Depends(lambda: "r")], q: str = "") -> dict[str, Any]:
        return {"q": q, "dep": request_id}

    @app.post("/echo")
    def echo(data: dict[str, Any]) -> dict[str, Any]:
        return data

    @app.post("/tasks")
    def tasks(
        names: Annotated[list[str], Body()],
        background_tasks: BackgroundTasks,
        s: Annotated[str, Depends(session)],
    ) -> dict[str, int]:
        for index, name in enumerate(names):
            background_tasks.add_task(record_async if index % 2 else record, name)
        return {"scheduled": len(names)}

    @app.get("/gated-task")
    def gated(background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(wait_for_gate, "gated")
        return "ok"

    @app.get("/stream-with-task")
    def stream_with_task(background_tasks: BackgroundTasks) -> StreamingResponse:
        background_tasks.add_task(record, "after-stream")
        return StreamingResponse(iter([b"1", b"2", b"3"]), media_type="text/plain")

    @app.get("/stream-closing")
    def stream_closing() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            try:
                yield b"1"
                yield b"2"
            finally:
                EVENTS.append("sync-stream:closed")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/stream-closing-async")
    async def stream_closing_async(background_tasks: BackgroundTasks) -> StreamingResponse:
        background_tasks.add_task(record, "never")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"1"
                yield b"2"
            finally:
                EVENTS.append("async-stream:closed")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/async-cleanup")
    async def with_async_cleanup(
        resource: Annotated[str, Depends(async_resource)],
    ) -> dict[str, str]:
        return {"resource": resource}

    @app.get("/crash")
    def crash(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(record, "never")
        raise RuntimeError("boom")

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418)

    return app


@pytest.fixture
def app() -> VelociPy:
    EVENTS.clear()
    GATE.clear()
    return build_app()


@pytest.fixture
def wsgi(app: VelociPy) -> Iterator[WSGIAdapter]:
    adapter = WSGIAdapter(app)
    yield adapter
    GATE.set()
    assert adapter.runner is not None
    assert wait_until(lambda: adapter.runner is not None and adapter.runner.pending == 0)


# -- environ -> request head ---------------------------------------------------------------


def test_request_head_from_environ() -> None:
    env = environ(
        "POST",
        "/caf\xc3\xa9",  # PEP 3333: UTF-8 bytes of "café" as latin-1 code points
        body=b"{}",
        query="a=1&b=%C3%A9",
        headers={"X-Trace-Id": "t1", "Accept": "*/*"},
    )
    env["SCRIPT_NAME"] = "/mount"
    env["wsgi.url_scheme"] = "https"
    head = request_head(env)
    assert head.method == "POST"
    assert head.path == "/café"
    assert head.root_path == "/mount"
    assert head.query_string == b"a=1&b=%C3%A9"
    assert head.scheme == "https"
    assert head.http_version == "1.1"
    assert head.client == ("10.0.0.7", 51000)
    assert head.server == ("testserver", 8000)
    assert sorted(head.headers) == sorted(
        [
            (b"host", b"testserver:8000"),
            (b"x-trace-id", b"t1"),
            (b"accept", b"*/*"),
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
        ]
    )


def test_empty_path_info_is_the_root_and_no_remote_address_is_none() -> None:
    env = environ(path="")
    del env["REMOTE_ADDR"], env["REMOTE_PORT"]
    head = request_head(env)
    assert head.path == "/"
    assert head.client is None


def test_request_heads_stay_right_as_shapes_repeat_and_change() -> None:
    # The header keys of an environ are remembered by its shape: a repeat, a new
    # header, a header gone, and an empty content type must all read correctly.
    first = request_head(environ("POST", "/", body=b"{}", headers={"X-Trace": "1"}))
    again = request_head(environ("POST", "/", body=b"{}", headers={"X-Trace": "2"}))
    more = request_head(environ("POST", "/", body=b"{}", headers={"X-Trace": "3", "X-B": "b"}))
    fewer = request_head(environ("POST", "/", body=b"{}", content_type=""))
    assert (b"x-trace", b"1") in first.headers and (b"x-trace", b"2") in again.headers
    assert {(b"x-trace", b"3"), (b"x-b", b"b")} <= set(more.headers)
    assert not any(name.startswith(b"x-") for name, _ in fewer.headers)
    assert b"content-type" not in dict(fewer.headers)
    assert dict(fewer.headers)[b"content-length"] == b"2"


def test_addresses_and_protocol_versions() -> None:
    env = environ()
    env["REMOTE_PORT"] = "not a port"
    env["SERVER_PROTOCOL"] = "HTTP/1.0"
    head = request_head(env)
    assert head.client == ("10.0.0.7", 0)
    assert head.server == ("testserver", 8000)
    assert head.http_version == "1.0"
    env["SERVER_PROTOCOL"] = "HTTP/2"
    env["REMOTE_PORT"] = "51001"
    head = request_head(env)
    assert head.http_version == "2"
    assert head.client == ("10.0.0.7", 51001)


def test_status_lines() -> None:
    assert status_line(200) == "200 OK"
    assert status_line(418).startswith("418 ")
    assert status_line(299) == "299 Unknown"


# -- every kind of response passes wsgiref.validate ----------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "code", "content_type", "body"),
    [
        ("GET", "/sync", 200, "application/json", None),
        ("GET", "/html", 200, "text/html; charset=utf-8", b"<p>hi</p>"),
        ("GET", "/text", 200, "text/plain; charset=utf-8", b"plain"),
        ("GET", "/bytes", 200, "application/octet-stream", b"\x00\x01"),
        ("DELETE", "/nothing", 204, None, b""),
        ("GET", "/not-modified", 304, None, b""),
        ("GET", "/stream", 200, "text/plain; charset=utf-8", b"abc"),
        ("GET", "/stream-async", 200, "text/plain; charset=utf-8", b"xyz"),
        ("GET", "/missing", 404, "application/json", b'{"detail":"Not Found"}'),
        ("POST", "/sync", 405, "application/json", b'{"detail":"Method Not Allowed"}'),
        ("GET", "/teapot", 418, "application/json", None),
        ("GET", "/crash", 500, "application/json", b'{"detail":"Internal Server Error"}'),
    ],
)
def test_every_kind_of_response_is_valid_wsgi(
    wsgi: WSGIAdapter,
    method: str,
    path: str,
    code: int,
    content_type: str | None,
    body: bytes | None,
) -> None:
    reply = call(wsgi, environ(method, path))
    assert reply.code == code
    assert reply.header("content-type") == content_type
    if body is not None:
        assert reply.body == body
    if reply.header("content-length") is not None:
        assert int(reply.header("content-length") or "") == len(reply.body)
    elif code not in (204, 304):
        assert path.startswith("/stream")  # only streams go without a length


def test_buffered_bodies_carry_their_length_and_streams_do_not(wsgi: WSGIAdapter) -> None:
    assert call(wsgi, environ("GET", "/sync")).header("content-length") is not None
    assert call(wsgi, environ("GET", "/stream")).header("content-length") is None


def test_head_keeps_the_length_of_the_get_body(wsgi: WSGIAdapter) -> None:
    get = call(wsgi, environ("GET", "/text"))
    head = call(wsgi, environ("HEAD", "/text"))
    assert head.code == 200 and head.body == b""
    assert head.header("content-length") == get.header("content-length") == "5"


def test_sync_code_runs_in_the_server_thread_async_code_on_the_loop_thread(
    wsgi: WSGIAdapter,
) -> None:
    assert call(wsgi, environ("GET", "/sync")).json() == {"thread": threading.current_thread().name}
    assert call(wsgi, environ("GET", "/async")).json() == {"thread": "velocipy-loop"}


def test_query_dependencies_and_json_bodies(wsgi: WSGIAdapter) -> None:
    assert call(wsgi, environ("GET", "/echo-head", query="q=hi")).json() == {
        "q": "hi",
        "dep": "r",
    }
    reply = call(wsgi, environ("POST", "/echo", body=b'{"a": [1, 2]}'))
    assert reply.code == 200 and reply.json() == {"a": [1, 2]}


def test_a_chunked_body_is_read_to_its_end(wsgi: WSGIAdapter) -> None:
    reply = call(wsgi, environ("POST", "/echo", body=b'{"chunked": true}', chunked=True))
    assert reply.json() == {"chunked": True}


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_cap_is_413(wsgi: WSGIAdapter, chunked: bool) -> None:
    body = json.dumps({"x": "y" * 100}).encode()
    reply = call(wsgi, environ("POST", "/echo", body=body, chunked=chunked))
    assert reply.code == 413


def test_a_bad_content_length_is_400(wsgi: WSGIAdapter) -> None:
    env = environ("POST", "/echo", body=b"{}")
    env["CONTENT_LENGTH"] = "-4"
    assert call(wsgi, env, validate=False).code == 400
    env["CONTENT_LENGTH"] = "two"
    assert call(wsgi, env, validate=False).code == 400


def test_a_body_cut_short_is_a_disconnect_and_runs_nothing(wsgi: WSGIAdapter) -> None:
    env = environ("POST", "/tasks", body=b'["a"]')
    env["CONTENT_LENGTH"] = "50"  # the client promised more than it sent
    call(wsgi, env)
    time.sleep(0.1)
    assert "a" not in EVENTS


# -- background tasks ----------------------------------------------------------------------


def test_tasks_run_in_order_after_a_complete_response_then_cleanup(wsgi: WSGIAdapter) -> None:
    names = [f"t{i}" for i in range(6)]
    reply = call(wsgi, environ("POST", "/tasks", body=json.dumps(names).encode()))
    assert reply.json() == {"scheduled": 6}
    assert wait_until(lambda: "session:close" in EVENTS)
    assert EVENTS == ["session:open", *names, "session:close"]


def test_close_returns_before_the_tasks_run(wsgi: WSGIAdapter) -> None:
    started = time.monotonic()
    reply = call(wsgi, environ("GET", "/gated-task"))
    assert reply.code == 200
    assert time.monotonic() - started < 1.0
    assert EVENTS == []  # the task is waiting on its runner thread, not in close()
    GATE.set()
    assert wait_until(lambda: EVENTS == ["gated"])


def test_a_response_not_sent_completely_abandons_its_tasks(
    wsgi: WSGIAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        reply = call(wsgi, environ("GET", "/stream-with-task"), stop_after=1)
    assert reply.body == b"1"
    time.sleep(0.1)
    assert "after-stream" not in EVENTS
    assert "tests.adapters.test_wsgi.record" in caplog.text
    assert "abandoned" in caplog.text


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_the_server_stops_reading_is_closed(wsgi: WSGIAdapter, kind: str) -> None:
    path = "/stream-closing" if kind == "sync" else "/stream-closing-async"
    assert call(wsgi, environ("GET", path), stop_after=1).body == b"1"
    assert wait_until(lambda: f"{kind}-stream:closed" in EVENTS)
    assert "never" not in EVENTS


def test_a_buffered_body_never_written_abandons_the_tasks_but_cleans_up(
    wsgi: WSGIAdapter,
) -> None:
    reply = call(wsgi, environ("POST", "/tasks", body=b'["t1"]'), stop_after=0)
    assert reply.code == 200 and reply.body == b""
    assert EVENTS == ["session:open", "session:close"]


def test_a_complete_stream_releases_its_tasks(wsgi: WSGIAdapter) -> None:
    assert call(wsgi, environ("GET", "/stream-with-task")).body == b"123"
    assert wait_until(lambda: EVENTS == ["after-stream"])


def test_a_crashing_handler_runs_no_task(wsgi: WSGIAdapter) -> None:
    assert call(wsgi, environ("GET", "/crash")).code == 500
    time.sleep(0.1)
    assert EVENTS == []


def test_async_dependency_cleanup_runs_on_the_loop(wsgi: WSGIAdapter) -> None:
    assert call(wsgi, environ("GET", "/async-cleanup")).json() == {"resource": "resource"}
    assert EVENTS == ["resource:close"]  # no tasks: cleanup runs in close() itself


def test_inline_mode_runs_the_tasks_in_close(app: VelociPy) -> None:
    adapter = WSGIAdapter(app, tasks="inline")
    assert adapter.runner is None
    names = ["i1", "i2", "i3"]
    call(adapter, environ("POST", "/tasks", body=json.dumps(names).encode()))
    assert EVENTS == ["session:open", *names, "session:close"]  # done when close() returned


def test_bad_options_are_refused(app: VelociPy) -> None:
    with pytest.raises(ValueError, match="tasks"):
        WSGIAdapter(app, tasks="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        WSGIAdapter(app, task_threads=0)


def test_app_wsgi_is_one_adapter_per_app(app: VelociPy) -> None:
    assert isinstance(app.wsgi, WSGIAdapter)
    assert app.wsgi is app.wsgi


# -- lifespan ------------------------------------------------------------------------------


def test_the_lifespan_starts_on_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    from velocipy.adapters import _wsgi_process

    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: VelociPy) -> AsyncIterator[dict[str, str]]:
        entered.append(threading.current_thread().name)
        yield {"client": "ready"}

    app = VelociPy(lifespan=lifespan)

    @app.get("/")
    def index() -> dict[str, str]:
        return dict(app.state)

    lifespans: list[Any] = []
    monkeypatch.setattr(_wsgi_process._current(), "lifespans", lifespans)
    adapter = WSGIAdapter(app)
    assert entered == []
    assert call(adapter, environ()).json() == {"client": "ready"}
    call(adapter, environ())
    assert entered == ["velocipy-loop"]
    assert len(lifespans) == 1
    lifespans.pop().__exit__(None, None, None)
