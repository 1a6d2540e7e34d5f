"""Publishing after the response without the request waiting (`publish="after_response"`,
`on_failure="log"`): the batch is queued to the publishing thread, the call ends, and the
tasks are settled later on the request's event loop, published or failed and hooked."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.adapters.test_server_harness import Reader, serving, using_parser
from tests.queues import jobs
from velocipy import BackgroundTasks, VelociPy
from velocipy.core import Task, TaskState
from velocipy.core._queue import Settlement
from velocipy.tasks import BatchingBackend, Envelope, Pending, TaskBackend


class Gate(BatchingBackend):
    """Sends nowhere; it can hold the publishing thread, or fail."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.hold = threading.Event()
        self.hold.set()
        self.fail: list[BaseException] = []
        self.sent: list[str] = []

    def send_batches(self, pendings: Sequence[Pending]) -> None:
        self.hold.wait(10)
        if self.fail:
            raise self.fail.pop(0)
        self.sent.extend(envelope.id for pending in pendings for envelope in pending.envelopes)


def signup_app(backend: Gate, **options: Any) -> tuple[VelociPy, list[Task]]:
    app = VelociPy(task_backend=backend, **options)
    handles: list[Task] = []

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> str:
        handles.append(tasks.add_task(jobs.record, "welcome"))
        return "ok"

    return app, handles


async def post(app: VelociPy) -> int:
    """One `POST /signup` through the app's ASGI interface; its status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/signup",
        "raw_path": b"/signup",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not settled in time"
        await asyncio.sleep(0.01)


def test_the_request_does_not_wait_and_its_tasks_count_until_published() -> None:
    backend = Gate(deadline=5.0)
    app, handles = signup_app(backend)
    assert backend.detaches

    async def main() -> None:
        backend.hold.clear()  # the broker is slow: the thread holds the send
        assert await asyncio.wait_for(post(app), 2.0) == 200
        [task] = handles
        assert task.state is TaskState.PENDING and app.tasks.pending == 1  # still in flight
        backend.hold.set()
        await until(lambda: task.state is TaskState.PUBLISHED)
        assert app.tasks.pending == 0 and app.tasks.published == 1
        assert backend.sent == [task.id]

    try:
        asyncio.run(main())
    finally:
        backend.close()


def test_a_batch_that_fails_is_logged_failed_and_hooked_sync_and_async(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Gate(deadline=5.0)
    backend.fail = [ValueError("the broker said no")]  # not a connection error: no retry
    app, handles = signup_app(backend)
    hooked: list[tuple[str, str, str]] = []

    @app.on_task_error
    def sync_hook(task: Task, error: BaseException) -> None:
        hooked.append(("sync", threading.current_thread().name, type(error).__name__))

    @app.on_task_error
    async def async_hook(task: Task, error: BaseException) -> None:
        hooked.append(("async", threading.current_thread().name, type(error).__name__))

    async def main() -> None:
        assert await post(app) == 200
        await until(lambda: len(hooked) == 2)

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        try:
            asyncio.run(main())
        finally:
            backend.close()
    [task] = handles
    assert task.state is TaskState.FAILED and app.tasks.failed == 1 and app.tasks.pending == 0
    # A sync hook runs in a worker thread, never on the event loop; an async one on it.
    assert [(kind, name) for kind, _, name in hooked] == [
        ("sync", "ValueError"),
        ("async", "ValueError"),
    ]
    assert hooked[0][1] != threading.main_thread().name
    assert hooked[1][1] == threading.main_thread().name
    assert any(
        "failed (ValueError('the broker said no')); they will not run" in r.getMessage()
        for r in caplog.records
    )


def test_a_batch_with_no_answer_is_reported_at_the_deadline_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Gate(deadline=0.3)
    app, handles = signup_app(backend)
    hooked: list[tuple[str, float]] = []

    @app.on_task_error
    def hook(task: Task, error: BaseException) -> None:
        hooked.append((type(error).__name__, time.monotonic()))

    async def main() -> float:
        backend.hold.clear()  # the broker stopped answering
        started = time.monotonic()
        assert await asyncio.wait_for(post(app), 2.0) == 200
        await until(lambda: bool(hooked))
        backend.hold.set()  # it answers after all: at least once, reported once
        await until(lambda: bool(backend.sent))
        await asyncio.sleep(0.1)
        return started

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        try:
            started = asyncio.run(main())
        finally:
            backend.close()
    [(kind, at)] = hooked
    assert kind == "TaskTimedOut" and 0.25 <= at - started < 2.0
    [task] = handles
    assert task.state is TaskState.FAILED and app.tasks.published == 0
    assert any("no answer within 0.3s" in r.getMessage() for r in caplog.records)


def test_requests_held_at_the_in_flight_bound_go_on_once_the_broker_answers() -> None:
    # Past half the bound requests wait for their publish again: when the broker answers,
    # their ends let the held requests in at once (not at the servers' next look, 0.5 s).
    backend = Gate(deadline=5.0)
    app, handles = signup_app(backend, max_tasks_in_flight=4)

    async def main() -> float:
        backend.hold.clear()
        calls = [asyncio.ensure_future(post(app)) for _ in range(10)]
        await until(lambda: app.tasks.pending == 4)  # at the bound: the rest are held
        await asyncio.sleep(0.1)
        assert len(handles) == 4
        released = time.monotonic()
        backend.hold.set()
        assert await asyncio.gather(*calls) == [200] * 10
        return time.monotonic() - released

    try:
        took = asyncio.run(main())
    finally:
        backend.close()
    assert took < 0.4, took
    assert len(handles) == 10 and app.tasks.published + app.tasks.pending == 10


def test_a_batch_that_fails_after_its_loop_closed_is_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Gate(deadline=5.0)
    backend.fail = [ValueError("the broker said no")]
    app, handles = signup_app(backend)

    async def main() -> None:
        backend.hold.clear()
        assert await post(app) == 200

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        asyncio.run(main())  # the loop closes with the batch still in the thread
        backend.hold.set()
        backend.close()  # sends what is queued, then the thread stops
    assert any(
        "after their event loop had closed; they will not run" in r.getMessage()
        and "tests.queues.jobs.record" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    "options",
    [{"publish": "before_response"}, {"on_failure": "inline"}],
    ids=["before_response", "inline-policy"],
)
def test_only_after_the_response_with_the_log_policy_does_a_batch_detach(
    options: dict[str, str],
) -> None:
    assert not Gate(**options).detaches


class Taker(TaskBackend):
    """A backend that detaches through the documented `detach` hook: it keeps each
    batch's settlement, to settle it when the test says; `taking=False` declines."""

    detaches = True

    def __init__(self, taking: bool) -> None:
        super().__init__()
        self.taking = taking
        self.detached: list[tuple[list[str], Settlement]] = []
        self.awaited: list[list[str]] = []

    def detach(self, envelopes: Sequence[Envelope], settlement: Settlement) -> bool:
        asyncio.get_running_loop()  # called on the request's event loop, or raises
        if not self.taking:
            return False
        self.detached.append(([e.id for e in envelopes], settlement))
        return True

    async def apublish_detached(
        self, envelopes: Sequence[Envelope], settlement: Settlement
    ) -> bool:
        self.awaited.append([e.id for e in envelopes])
        return False


def test_a_detaching_backend_takes_the_batch_in_the_flow_and_settles_it_later() -> None:
    backend = Taker(taking=True)
    app = VelociPy(task_backend=backend)
    handles: list[Task] = []

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> str:
        handles.append(tasks.add_task(jobs.record, "welcome"))
        handles.append(tasks.add_task(jobs.record, "again"))
        return "ok"

    async def main() -> None:
        assert await post(app) == 200
        assert backend.awaited == []  # no publish effect, no coroutine
        [(ids, settlement)] = backend.detached
        assert ids == [task.id for task in handles]  # one batch, in the order added
        assert [task.state for task in handles] == [TaskState.PENDING] * 2
        assert app.tasks.pending == 2  # in flight until the backend settles them
        settlement.published()
        assert [task.state for task in handles] == [TaskState.PUBLISHED] * 2
        assert app.tasks.pending == 0 and app.tasks.published == 2

    asyncio.run(main())


def test_a_batch_the_backend_cannot_detach_in_the_flow_goes_to_apublish_detached() -> None:
    backend = Taker(taking=False)
    app = VelociPy(task_backend=backend)
    handles: list[Task] = []

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> str:
        handles.append(tasks.add_task(jobs.record, "welcome"))
        return "ok"

    assert asyncio.run(post(app)) == 200
    assert backend.detached == [] and backend.awaited == [[handles[0].id]]
    # It answered False: published as `apublish` would have, settled by the core.
    assert handles[0].state is TaskState.PUBLISHED and app.tasks.published == 1


def test_a_detaching_backend_under_wsgi_publishes_with_no_event_loop_in_the_flow() -> None:
    # The sync driver steps the flow where no event loop runs: `detach` declines
    # there, and the batch goes through the publish effect, as before.
    backend = Gate(deadline=5.0)
    app, handles = signup_app(backend)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/signup",
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": "0",
    }
    statuses: list[str] = []
    try:
        body = app.wsgi(environ, lambda status, headers, *_: statuses.append(status))
        try:
            assert b"".join(body) == b'"ok"'
        finally:
            getattr(body, "close", lambda: None)()
        deadline = time.monotonic() + 5
        while handles[0].state is not TaskState.PUBLISHED:
            assert time.monotonic() < deadline, handles[0].state
            time.sleep(0.01)
    finally:
        backend.close()
    assert statuses == ["200 OK"] and backend.sent == [handles[0].id]


class WatchedSettlement(Settlement):
    """A settlement a test can hold a weak reference to, and see settled."""

    def __init__(self, backend: TaskBackend) -> None:
        super().__init__(backend, [], "POST /signup", ())
        self.settled = threading.Event()

    def published(self) -> None:
        self.settled.set()


def test_a_settled_batch_is_let_go_of_long_before_its_deadline() -> None:
    # What the publisher holds of a request it has answered is garbage at once (not
    # when its deadline passes): held, thousands of requests' tasks outlive the young
    # generation and the collector scans them again and again.
    backend = Gate(deadline=30.0)

    async def main() -> None:
        settlement = WatchedSettlement(backend)
        held = weakref.ref(settlement)
        assert backend.detach(
            [Envelope(id="x", task="tests.queues.jobs:record", name="record")], settlement
        )
        settled = settlement.settled
        del settlement
        await until(settled.is_set)
        await asyncio.sleep(0)
        assert held() is None
        # Nor does its deadline watch keep the answered caller's entry.
        assert [len(watch._queue) for watch in backend.publisher._watches.values()] == [0]

    gc.disable()  # freed by its count of references, not by a collection
    try:
        asyncio.run(main())
    finally:
        gc.enable()
        backend.close()


class Watcher(TaskBackend):
    """Detaches each batch after noting whether the client already has its response:
    it holds the event loop (no await) until the client says so, for at most 2 s."""

    detaches = True

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.client_had_its_response: list[bool] = []

    def detach(self, envelopes: Sequence[Envelope], settlement: Settlement) -> bool:
        deadline = time.monotonic() + 2.0
        while not os.path.exists(self.marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client_had_its_response.append(os.path.exists(self.marker))
        settlement.published()
        return True

    async def apublish_detached(
        self, envelopes: Sequence[Envelope], settlement: Settlement
    ) -> bool:
        raise AssertionError("detached in the flow on the built-in server's event loop")


@pytest.mark.parametrize("parser", ["h11", "httptools"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_on_the_built_in_server_a_batch_is_handed_over_after_its_response_is_written(
    loop: str, parser: str, tmp_path: Any
) -> None:
    pytest.importorskip(loop if loop == "uvloop" else "asyncio")
    pytest.importorskip("httptools" if parser == "httptools" else "h11")
    marker = tmp_path / "the client has its response"
    backend = Watcher(str(marker))
    app = VelociPy(task_backend=backend)

    @app.post("/signup")
    async def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "welcome")
        return "ok"

    with using_parser(parser), serving(app, loop=loop) as running, running.connect() as sock:
        sock.sendall(b"POST /signup HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert Reader(sock).response().status == 200
        marker.touch()
        deadline = time.monotonic() + 5
        while not backend.client_had_its_response and time.monotonic() < deadline:
            time.sleep(0.01)
    assert backend.client_had_its_response == [True]
