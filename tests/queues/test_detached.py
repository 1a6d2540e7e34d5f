"""Publishing after the response without the request waiting (`publish="after_response"`,
`on_failure="log"`): the batch is queued to the publishing thread, the call ends, and the
tasks are settled later on the request's event loop, published or failed and hooked."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.queues import jobs
from velocipy import BackgroundTasks, VelociPy
from velocipy.core import Task, TaskState
from velocipy.tasks import BatchingBackend, Pending


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
