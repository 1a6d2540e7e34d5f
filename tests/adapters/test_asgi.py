"""The ASGI adapter driven by hand: scopes in, messages out, no server.

Each test builds a scope, a `receive` that hands out prepared messages and a
`send` that records, then checks the messages, their order, and what the
background tasks saw when they ran. Every test runs on asyncio and on trio.
"""

from __future__ import annotations

import functools
import gc
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from velocipy import BackgroundTasks, Request, StreamingResponse, VelociPy
from velocipy.adapters._asgi_request import route_path
from velocipy.adapters._gc import BUSY_FLOWS, DEFAULT_THRESHOLDS, SERVING_THRESHOLDS
from velocipy.adapters.asgi import ASGIAdapter
from velocipy.core import Respond

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Message = dict[str, Any]


def http_scope(method: str = "GET", path: str = "/", **extra: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.org")],
        "client": ("10.0.0.1", 51000),
        "server": ("example.org", 80),
    }
    scope.update(extra)
    return scope


class Peer:
    """The server side of one ASGI call: prepared `receive` messages, recorded `send`s."""

    def __init__(self, *incoming: Message, then_disconnect: bool = False) -> None:
        self.incoming = list(incoming)
        self.then_disconnect = then_disconnect
        self.sent: list[Message] = []
        self.received = 0

    async def receive(self) -> Message:
        self.received += 1
        if self.incoming:
            return self.incoming.pop(0)
        if self.then_disconnect:
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        assert self.sent[0]["type"] == "http.response.start"
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])


def body_messages(*chunks: bytes) -> list[Message]:
    last = len(chunks) - 1
    return [
        {"type": "http.request", "body": chunk, "more_body": i < last}
        for i, chunk in enumerate(chunks)
    ]


def post_scope(path: str, *chunks: bytes) -> dict[str, Any]:
    """A POST scope whose headers frame `chunks` as a real client would (HTTP/1.1)."""
    framing = (
        (b"content-length", str(len(chunks[0])).encode())
        if len(chunks) == 1
        else (b"transfer-encoding", b"chunked")
    )
    headers = [(b"host", b"example.org"), (b"content-type", b"application/json"), framing]
    return http_scope("POST", path, headers=headers)


async def call(app: Any, scope: dict[str, Any], peer: Peer) -> Peer:
    with anyio.fail_after(5):
        await app(scope, peer.receive, peer.send)
    return peer


# -- the app under test ----------------------------------------------------------------------

app = VelociPy(max_body_size=64)
SEEN: list[Any] = []


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.get("/hello-sync")
def hello_sync() -> dict[str, Any]:
    return {"main_thread": threading.current_thread() is threading.main_thread()}


@app.get("/echo-head/{rest:path}")
async def echo_head(request: Request) -> dict[str, Any]:
    head = request.head
    return {
        "method": head.method,
        "path": head.path,
        "root_path": head.root_path,
        "query": head.query_string.decode(),
        "headers": [[k.decode(), v.decode()] for k, v in head.headers],
        "client": list(head.client) if head.client else None,
        "server": list(head.server) if head.server else None,
        "scheme": head.scheme,
        "http_version": head.http_version,
        "url": request.url,
    }


@app.post("/echo")
async def echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


@app.post("/ignore-body")
async def ignore_body() -> str:
    return "ignored"


def record(name: str, peer: Peer | None = None) -> None:
    sent = len(peer.sent) if peer is not None else None
    SEEN.append((name, sent, threading.current_thread() is threading.main_thread()))


async def record_async(name: str, peer: Peer | None = None) -> None:
    SEEN.append((name, len(peer.sent) if peer is not None else None, "async"))


def fail(name: str) -> None:
    SEEN.append((name, "failed"))
    raise RuntimeError(f"{name} failed on purpose")


PEERS: dict[str, Peer] = {}


@app.post("/tasks/{key}")
async def tasks(key: str, data: dict[str, Any], background_tasks: BackgroundTasks) -> str:
    peer = PEERS.get(key)
    for name in data["names"]:
        if name.startswith("fail"):
            background_tasks.add_task(fail, name)
        elif name.startswith("async"):
            background_tasks.add_task(record_async, name, peer)
        elif name.startswith("sleep"):
            background_tasks.add_task(anyio.sleep, 30)
        else:
            background_tasks.add_task(record, name, peer)
    return "scheduled"


async def inspect_the_running_call() -> None:
    """Record what the adapter's call keeps alive while this task runs."""
    for candidate in gc.get_objects():
        if inspect.iscoroutine(candidate) and candidate.cr_code is ASGIAdapter.__call__.__code__:
            if candidate.cr_frame is not None:
                SEEN.append(list(candidate.cr_frame.f_locals.values()))


@app.get("/inspect-call")
async def inspect_call(background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(inspect_the_running_call)
    return "scheduled"


@app.get("/stream")
def stream(background_tasks: BackgroundTasks) -> StreamingResponse:
    background_tasks.add_task(record, "after-stream")
    return StreamingResponse(iter([b"one", b"", b"two"]), media_type="text/plain")


CLOSED: list[str] = []


@app.get("/endless")
async def endless(background_tasks: BackgroundTasks) -> StreamingResponse:
    background_tasks.add_task(record, "after-endless")

    async def forever() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"tick"
                await anyio.sleep(0.001)
        finally:
            CLOSED.append("endless")

    return StreamingResponse(forever())


@app.get("/broken-stream")
def broken_stream(background_tasks: BackgroundTasks) -> StreamingResponse:
    background_tasks.add_task(record, "after-broken")

    def chunks() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("stream broke on purpose")

    return StreamingResponse(chunks())


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    SEEN.clear()
    PEERS.clear()
    CLOSED.clear()
    yield


def json_body(peer: Peer) -> Any:
    import json

    return json.loads(peer.body)


# -- responses ---------------------------------------------------------------------------------


async def test_a_buffered_response_is_one_start_and_one_body_message() -> None:
    peer = await call(app, http_scope("GET", "/hello"), Peer())
    assert [m["type"] for m in peer.sent] == ["http.response.start", "http.response.body"]
    assert peer.status == 200
    assert peer.headers[b"content-type"] == b"application/json"
    assert peer.headers[b"content-length"] == str(len(peer.body)).encode()
    assert peer.sent[1].get("more_body", False) is False
    assert json_body(peer) == {"message": "hello"}
    assert peer.received == 0  # a route without a body never reads one


async def test_head_sends_no_body_but_keeps_the_length() -> None:
    peer = await call(app, http_scope("HEAD", "/hello"), Peer())
    assert peer.status == 200 and peer.body == b""
    assert peer.headers[b"content-length"] == b"19"


async def test_sync_handlers_run_in_a_worker_thread() -> None:
    peer = await call(app, http_scope("GET", "/hello-sync"), Peer())
    assert json_body(peer) == {"main_thread": False}


async def test_the_scope_becomes_the_request_head() -> None:
    scope = http_scope(
        "GET",
        "/api/echo-head/a%20b",
        root_path="/api",
        query_string=b"x=1&y=%20",
        headers=[(b"host", b"example.org:8080"), (b"x-one", b"1"), (b"x-one", b"2")],
        client=["192.0.2.7", 40000],  # some servers give lists
        scheme="https",
        http_version="2",
    )
    scope["path"] = "/api/echo-head/a b"  # ASGI paths are already percent-decoded
    peer = await call(app, scope, Peer(*body_messages(b"")))  # HTTP/2: no length, so read
    assert json_body(peer) == {
        "method": "GET",
        "path": "/echo-head/a b",
        "root_path": "/api",
        "query": "x=1&y=%20",
        "headers": [["host", "example.org:8080"], ["x-one", "1"], ["x-one", "2"]],
        "client": ["192.0.2.7", 40000],
        "server": ["example.org", 80],
        "scheme": "https",
        "http_version": "2",
        "url": "https://example.org:8080/api/echo-head/a%20b?x=1&y=%20",
    }


async def test_a_scope_with_only_the_required_keys_gets_the_spec_defaults() -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/echo-head/x",
        "query_string": b"",
        "headers": [(b"host", b"example.org")],
    }
    peer = await call(app, scope, Peer())
    head = json_body(peer)
    assert (head["root_path"], head["client"], head["server"]) == ("", None, None)
    assert (head["scheme"], head["http_version"]) == ("http", "1.1")
    # HTTP/1.1 with neither content-length nor transfer-encoding has no body: not awaited.
    assert peer.received == 0


async def test_a_path_without_its_root_path_is_routed_as_is() -> None:
    # Older servers leave the root out of `path`; both forms route the same.
    peer = await call(app, http_scope("GET", "/echo-head/x", root_path="/api"), Peer())
    assert json_body(peer)["path"] == "/echo-head/x"


def test_route_path_strips_the_root_only_on_a_segment_boundary() -> None:
    assert route_path("/api/items", "/api") == "/items"
    assert route_path("/api", "/api") == "/"
    assert route_path("/apiary", "/api") == "/apiary"
    assert route_path("/items", "") == "/items"
    assert route_path("/items", "/api") == "/items"


# -- the request body ------------------------------------------------------------------------


async def test_a_body_in_several_messages_is_assembled() -> None:
    chunks = (b'{"a": ', b"", b"[1, 2]", b"}")
    peer = await call(app, post_scope("/echo", *chunks), Peer(*body_messages(*chunks)))
    assert peer.status == 200 and json_body(peer) == {"a": [1, 2]}
    assert peer.received == 4


async def test_a_route_without_a_body_parameter_never_reads_it() -> None:
    peer = Peer(*body_messages(b"x" * 1000))
    await call(app, post_scope("/ignore-body", b"x" * 1000), peer)
    assert peer.status == 200 and peer.received == 0


async def test_a_declared_length_past_the_cap_is_413_before_reading() -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
    peer = Peer(*body_messages(b"x" * 1000))
    await call(app, http_scope("POST", "/echo", headers=headers), peer)
    assert peer.status == 413 and peer.received == 0
    assert json_body(peer) == {"detail": "Request body is larger than 64 bytes"}
    assert (
        peer.headers[b"connection"] == b"close"
    )  # the unread body must not be parsed as a request


async def test_a_streamed_body_growing_past_the_cap_is_413() -> None:
    chunks = (b"[" + b"1," * 20, b"2," * 20, b"3]")
    peer = await call(app, post_scope("/echo", *chunks), Peer(*body_messages(*chunks)))
    assert peer.status == 413 and peer.received == 2


async def test_disconnect_before_the_body_is_complete_is_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    PEERS["gone"] = peer = Peer(*body_messages(b'{"names": ', b"never"))
    peer.incoming.pop()  # the client leaves after the first half
    peer.then_disconnect = True
    with caplog.at_level(logging.DEBUG, logger="velocipy"):
        await call(app, post_scope("/tasks/gone", b"a", b"b"), peer)
    assert peer.sent == [] and SEEN == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- background tasks --------------------------------------------------------------------------


async def test_tasks_run_in_order_after_the_final_body_message() -> None:
    body = b'{"names": ["one", "async-two", "three"]}'
    PEERS["k"] = peer = Peer(*body_messages(body))
    await call(app, post_scope("/tasks/k", body), peer)
    assert peer.status == 200 and peer.body == b'"scheduled"'
    # Each task saw both response messages already sent; sync ones ran off the loop thread.
    assert SEEN == [("one", 2, False), ("async-two", 2, "async"), ("three", 2, False)]


async def test_while_tasks_run_the_call_keeps_no_response_objects_alive() -> None:
    # With many slow tasks in flight, what each call keeps alive is scanned by every
    # garbage collection meanwhile (docs/asgi.md): the response's objects must be gone.
    peer = await call(app, http_scope("GET", "/inspect-call"), Peer())
    assert peer.status == 200
    [kept] = SEEN
    assert kept, "the adapter's frame was not found"
    assert not [value for value in kept if isinstance(value, (Respond, functools.partial))]
    messages = [value for value in kept if isinstance(value, dict) and "type" in value]
    assert [message["type"] for message in messages] == ["http"]  # the scope, nothing sent


async def test_a_failing_task_is_logged_contained_and_the_rest_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b'{"names": ["one", "fail-two", "three"]}'
    await call(app, post_scope("/tasks/f", body), Peer(*body_messages(body)))  # raises nothing
    assert [s[0] for s in SEEN] == ["one", "fail-two", "three"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert "fail" in failures[0].getMessage() and failures[0].exc_info is not None


async def test_an_undeliverable_response_abandons_its_tasks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Gone(Peer):
        async def send(self, message: Message) -> None:
            if message["type"] == "http.response.body":
                raise OSError("client went away")  # what ASGI 2.4 servers raise
            await super().send(message)

    body = b'{"names": ["one", "two"]}'
    await call(app, post_scope("/tasks/g", body), Gone(*body_messages(body)))
    assert SEEN == []
    abandoned = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
    assert len(abandoned) == 2 and "test_asgi.record" in abandoned[0]


async def test_cancelling_the_call_logs_the_interrupted_and_abandoned_tasks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b'{"names": ["sleep", "after"]}'
    PEERS["c"] = peer = Peer(*body_messages(body))
    with anyio.move_on_after(0.3):  # the server's graceful-shutdown timeout, in small
        await app(post_scope("/tasks/c", body), peer.receive, peer.send)
    assert peer.status == 200 and SEEN == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("interrupted" in m and "sleep" in m for m in messages), messages
    assert any("abandoned" in m and "test_asgi.record" in m for m in messages), messages


async def test_slow_sync_tasks_never_take_the_handlers_threads() -> None:
    adapter = ASGIAdapter(app, handler_threads=1, task_threads=1)
    release = threading.Event()

    def blocking_task() -> None:
        release.wait(5)
        SEEN.append("task done")

    blocking_app = VelociPy()

    @blocking_app.post("/block")
    def block(background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(blocking_task)
        return "ok"

    adapter.app = blocking_app
    blocking_app.add_api_route("/hello-sync", hello_sync)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            first = Peer()
            group.start_soon(adapter, http_scope("POST", "/block"), first.receive, first.send)
            while not first.sent:
                await anyio.sleep(0.01)
            # The task holds the only task thread; a sync handler still gets its thread.
            second = await call(adapter, http_scope("GET", "/hello-sync"), Peer())
            assert second.status == 200 and SEEN == []
            release.set()
    assert SEEN == ["task done"]


# -- streaming ---------------------------------------------------------------------------------


async def test_a_stream_is_sent_with_more_body_then_its_tasks_run() -> None:
    peer = await call(app, http_scope("GET", "/stream"), Peer())
    assert peer.sent[1:] == [
        {"type": "http.response.body", "body": b"one", "more_body": True},
        {"type": "http.response.body", "body": b"two", "more_body": True},
        {"type": "http.response.body", "body": b""},
    ]
    assert [s[0] for s in SEEN] == ["after-stream"]


async def test_a_client_leaving_mid_stream_stops_it_and_abandons_tasks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class LeavesLater(Peer):
        async def receive(self) -> Message:
            while len(self.sent) < 5:
                await anyio.sleep(0.001)
            return {"type": "http.disconnect"}

    peer = await call(app, http_scope("GET", "/endless"), LeavesLater())
    assert len(peer.sent) >= 5 and all(m.get("more_body") for m in peer.sent[1:])
    assert CLOSED == ["endless"]  # the generator's `finally` ran
    assert SEEN == []
    assert any("abandoned" in m and "test_asgi.record" in m for m in caplog.messages)


async def test_a_stream_failing_midway_is_raised_to_the_server_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = Peer()
    with pytest.raises(RuntimeError, match="stream broke on purpose"):
        await call(app, http_scope("GET", "/broken-stream"), peer)
    assert peer.sent[-1] == {"type": "http.response.body", "body": b"partial", "more_body": True}
    assert SEEN == []
    assert any("Streaming the response to GET /broken-stream failed" in m for m in caplog.messages)
    assert any("abandoned" in m for m in caplog.messages)


# -- lifespan, websocket, unknown scopes -------------------------------------------------------


async def test_lifespan_runs_startup_then_shutdown_once() -> None:
    calls: list[str] = []
    lifespan_app = VelociPy(on_startup=[lambda: calls.append("up")])
    lifespan_app.on_event("shutdown")(lambda: calls.append("down"))
    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await call(lifespan_app, {"type": "lifespan", "asgi": {"version": "3.0"}}, peer)
    assert [m["type"] for m in peer.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert calls == ["up", "down"]


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Start with no frozen objects and leave none frozen, whatever the test does."""
    if gc.get_freeze_count():
        pytest.skip("objects were frozen before this test")
    try:
        yield
    finally:
        gc.unfreeze()


async def test_startup_freezes_the_objects_alive_then_and_shutdown_unfreezes(
    unfrozen: None,
) -> None:
    seen: list[int] = []
    lifespan_app = VelociPy()

    @lifespan_app.get("/frozen")
    def frozen() -> dict[str, int]:
        seen.append(gc.get_freeze_count())
        return {}

    to_app, inbox = anyio.create_memory_object_stream[Message](2)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group, to_app, inbox:
            group.start_soon(lifespan_app, {"type": "lifespan"}, inbox.receive, send)
            await to_app.send({"type": "lifespan.startup"})
            while not sent:
                await anyio.sleep(0.01)
            assert sent[0]["type"] == "lifespan.startup.complete"
            await call(lifespan_app, http_scope("GET", "/frozen"), Peer())
            await to_app.send({"type": "lifespan.shutdown"})
    assert seen and seen[0] > 1000  # the modules, the app: everything alive at startup
    assert sent[-1]["type"] == "lifespan.shutdown.complete"
    assert gc.get_freeze_count() == 0


async def test_the_freeze_can_be_turned_off(unfrozen: None) -> None:
    adapter = ASGIAdapter(VelociPy(on_startup=[lambda: SEEN.append(gc.get_freeze_count())]))
    adapter.freeze_gc = False
    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await call(adapter, {"type": "lifespan"}, peer)
    assert peer.sent[-1]["type"] == "lifespan.shutdown.complete"
    assert SEEN == [0] and gc.get_freeze_count() == 0


async def test_young_collections_are_kept_small_while_many_calls_run_their_tasks() -> None:
    released = anyio.Event()
    waiting = VelociPy()

    @waiting.get("/wait")
    async def wait(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(released.wait)
        return {}

    before = gc.get_threshold()
    gc.set_threshold(*DEFAULT_THRESHOLDS)  # CPython's, whatever an earlier test left
    try:
        for freeze_gc, while_busy in ((True, SERVING_THRESHOLDS), (False, DEFAULT_THRESHOLDS)):
            released = anyio.Event()
            adapter = ASGIAdapter(waiting, freeze_gc=freeze_gc)
            peers = [Peer({"type": "http.request", "body": b""}) for _ in range(BUSY_FLOWS + 5)]
            seen: list[tuple[int, int, int]] = []
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for number, peer in enumerate(peers):
                        scope = http_scope("GET", "/wait")
                        group.start_soon(adapter, scope, peer.receive, peer.send)
                        while len(peer.sent) < 2:  # its response is out, its task waits
                            await anyio.sleep(0)
                        if number == BUSY_FLOWS - 3:  # not yet: few tasks keep CPython's
                            seen.append(gc.get_threshold())
                    seen.append(gc.get_threshold())
                    released.set()
            seen.append(gc.get_threshold())
            assert seen == [DEFAULT_THRESHOLDS, while_busy, DEFAULT_THRESHOLDS]
    finally:
        gc.set_threshold(*before)


async def test_a_freeze_made_before_startup_is_left_in_place(unfrozen: None) -> None:
    gc.freeze()  # as a server preloading the app and forking might have done
    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await call(VelociPy(), {"type": "lifespan"}, peer)
    assert peer.sent[-1]["type"] == "lifespan.shutdown.complete"
    assert gc.get_freeze_count() > 0


async def test_a_failing_startup_is_reported_with_its_message() -> None:
    def broken() -> None:
        raise RuntimeError("database unreachable")

    peer = Peer({"type": "lifespan.startup"})
    await call(VelociPy(on_startup=[broken]), {"type": "lifespan"}, peer)
    assert [m["type"] for m in peer.sent] == ["lifespan.startup.failed"]
    assert "RuntimeError: database unreachable" in peer.sent[0]["message"]


async def test_a_failing_shutdown_is_reported_with_its_message() -> None:
    def broken() -> None:
        raise RuntimeError("flush failed")

    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await call(VelociPy(on_shutdown=[broken]), {"type": "lifespan"}, peer)
    assert [m["type"] for m in peer.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed",
    ]
    assert "flush failed" in peer.sent[1]["message"]


async def test_a_websocket_is_closed_cleanly() -> None:
    peer = Peer({"type": "websocket.connect"})
    await call(app, {"type": "websocket", "path": "/ws", "headers": []}, peer)
    assert [m["type"] for m in peer.sent] == ["websocket.close"]


async def test_an_unknown_scope_type_is_refused() -> None:
    with pytest.raises(ValueError, match="'telepathy'"):
        await call(app, {"type": "telepathy"}, Peer())


async def test_nothing_escapes_after_the_response_even_a_driver_failure(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The core contains task failures itself; this guards the adapter's own last line.
    import velocipy.adapters.asgi as asgi_module

    real_drive = asgi_module.drive_async
    calls = 0

    async def drive_then_break(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the post-response drive
            raise RuntimeError("broken driver")
        return await real_drive(*args, **kwargs)

    monkeypatch.setattr(asgi_module, "drive_async", drive_then_break)
    body = b'{"names": ["one"]}'
    peer = await call(app, post_scope("/tasks/x", body), Peer(*body_messages(body)))
    assert peer.status == 200 and calls == 2
    assert any("Background work for POST /tasks/x failed" in m for m in caplog.messages)
