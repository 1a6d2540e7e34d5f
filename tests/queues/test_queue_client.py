"""Queue backends through the TestClient: what is published, when, and what a worker runs.

The TestClient records each published batch as the JSON a worker would get and
runs it through the worker's own path (import by name, rebuild, run), so these
tests see the whole contract without a broker; tests with `record_tasks=False`
publish to a backend written here, to watch the order of commit and publish.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import time
import types
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from tests.queues import jobs
from velocipy import BackgroundTasks, Depends, VelociPy
from velocipy.core import TaskState
from velocipy.tasks import (
    Envelope,
    ForwardFailed,
    InProcess,
    RecordingBackend,
    TaskBackend,
    TaskNotPortable,
    request_id,
    run_batch,
    run_next,
    traceparent,
)
from velocipy.testing import TestClient


@pytest.fixture(autouse=True)
def clear_runs() -> Iterator[None]:
    jobs.RUNS.clear()
    yield
    jobs.RUNS.clear()


class Journal(TaskBackend):
    """A backend that writes down what happens, optionally failing or hanging."""

    supports_defer = True
    supports_priority = True

    def __init__(self, events: list[str], *, fail: bool = False, hang: float = 0, **options: Any):
        super().__init__(**options)
        self.events = events
        self.fail = fail
        self.hang = hang
        self.batches: list[list[Envelope]] = []

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self.hang:
            time.sleep(self.hang)
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.events.append("publish")
        self.batches.append(list(envelopes))


def test_published_once_and_run_once_with_the_arguments_and_context() -> None:
    app = VelociPy(task_backend=RecordingBackend())
    ident = uuid.UUID(int=7)

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> dict[str, str]:
        request_id.set("req-42")
        traceparent.set("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        signup = jobs.Signup("ann@example.com", datetime.datetime(2024, 5, 1, 9, 30), jobs.Plan.PRO)
        tasks.add_task(jobs.welcome, signup, ident, credit=decimal.Decimal("9.50"))
        return {"ok": "yes"}

    client = TestClient(app)
    response = client.post("/signup")
    assert response.status_code == 200
    [envelope] = response.envelopes
    assert envelope["task"] == "tests.queues.jobs:welcome"
    assert envelope["args"][0] == {
        "email": "ann@example.com",
        "at": "2024-05-01T09:30:00",
        "plan": "pro",
    }
    assert envelope["kwargs"] == {"credit": "9.50"}
    assert envelope["route"] == "POST /signup"
    assert envelope["context"]["velocipy.request_id"] == "req-42"
    [handle] = response.tasks
    assert handle.state is TaskState.PUBLISHED and envelope["id"] == handle.queue_id  # type: ignore[attr-defined]
    [run] = jobs.RUNS
    assert run["task"] == "welcome" and run["ident"] == str(ident) and run["credit"] == "9.50"
    assert run["plan"] == "pro" and run["request_id"] == "req-42"
    assert run["traceparent"].startswith("00-4bf92f")
    # The TestClient recorded; the app's own backend was never asked.
    assert app.task_backend.batches == []  # type: ignore[attr-defined]


def test_one_request_is_one_batch_run_in_order_with_failures_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VelociPy(task_backend=RecordingBackend())

    @app.post("/three")
    async def three(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "first")
        tasks.add_task(jobs.fail, "second")
        tasks.add_task(jobs.async_record, "third")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app).post("/three")
    assert len(response._recorder.batches) == 1  # type: ignore[union-attr]
    assert [run["task"] for run in jobs.RUNS] == ["record", "fail", "async_record"]
    failed = [r for r in caplog.records if "tests.queues.jobs.fail" in r.getMessage()]
    assert failed and failed[0].exc_info is not None
    assert "failed on purpose" in str(failed[0].exc_info[1])


def test_nothing_is_published_when_the_handler_fails() -> None:
    events: list[str] = []
    app = VelociPy(task_backend=Journal(events))

    @app.post("/broken")
    def broken(tasks: BackgroundTasks) -> None:
        tasks.add_task(jobs.record, "never")
        raise RuntimeError("handler failed")

    response = TestClient(app, raise_server_exceptions=False, record_tasks=False).post("/broken")
    assert response.status_code == 500
    assert events == [] and jobs.RUNS == []


def test_published_after_the_cleanup_commit_and_not_at_all_when_it_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    app = VelociPy(task_backend=Journal(events))
    fail_commit = {"on": False}

    def session() -> Iterator[str]:
        yield "session"
        if fail_commit["on"]:
            raise RuntimeError("commit failed")
        events.append("commit")

    @app.post("/order")
    def order(tasks: BackgroundTasks, db: str = Depends(session)) -> str:
        tasks.add_task(jobs.record, "ship")
        return "ok"

    client = TestClient(app, record_tasks=False)
    assert client.post("/order").status_code == 200
    assert events == ["commit", "publish"]

    events.clear()
    fail_commit["on"] = True
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = client.post("/order")
    assert response.status_code == 200 and events == []
    assert response.tasks[0].state is TaskState.ABANDONED
    assert any("nothing was published" in r.getMessage() for r in caplog.records)


def test_inline_tasks_stay_in_process_and_run_before_the_cleanup() -> None:
    events: list[str] = []
    app = VelociPy(task_backend=Journal(events))

    def session() -> Iterator[None]:
        yield
        events.append("commit")

    @app.post("/mixed")
    def mixed(tasks: BackgroundTasks, _: None = Depends(session)) -> str:
        local = object()
        # A closure cannot travel; `inline` keeps it here, in the order added.
        tasks.inline.add_task(lambda: events.append(f"inline {local is not None}"))
        tasks.add_task(jobs.record, "queued")
        return "ok"

    TestClient(app, record_tasks=False).post("/mixed")
    assert events == ["inline True", "commit", "publish"]


class Session:
    def log(self) -> None:
        pass


def _closure_task() -> Any:
    secret = 1

    def inner() -> int:
        return secret

    return inner


def _in_main() -> None:
    pass


_in_main.__module__ = "__main__"


@pytest.mark.parametrize(
    ("func", "args", "complaint"),
    [
        (lambda: None, (), "a lambda"),
        (_closure_task(), (), "closure"),
        (Session().log, (), "bound method of a Session"),
        (_in_main, (), "__main__"),
        (jobs.record, (object(),), "argument[0] is a object, which is not JSON"),
        (jobs.record, ({1: "x"},), "non-string key"),
    ],
    ids=["lambda", "closure", "bound-method", "main", "object-argument", "int-key"],
)
def test_a_task_that_cannot_travel_is_an_error_at_add_task_in_the_handler(
    func: Any, args: tuple[Any, ...], complaint: str
) -> None:
    app = VelociPy(task_backend=RecordingBackend())
    caught: list[TaskNotPortable] = []
    after: list[str] = []

    @app.post("/bad")
    def bad(tasks: BackgroundTasks) -> str:
        try:
            tasks.add_task(func, *args)
        except TaskNotPortable as problem:  # raised by add_task itself, here
            caught.append(problem)
            raise
        after.append("handler went on")  # pragma: no cover - must not be reached
        return "ok"

    client = TestClient(app)
    with pytest.raises(TaskNotPortable) as raised:
        client.post("/bad")
    assert caught == [raised.value] and after == []
    message = str(raised.value)
    assert message.startswith("POST /bad: background task ") and complaint in message
    assert "background_tasks.inline.add_task" in message
    response = TestClient(app, raise_server_exceptions=False).post("/bad")
    assert response.status_code == 500 and response.envelopes == []
    assert app.tasks.pending == 0


def test_a_backend_refuses_an_async_task_at_add_task() -> None:
    class SyncOnly(RecordingBackend):
        supports_async_task = False

    app = VelociPy(task_backend=SyncOnly())

    @app.post("/async")
    def with_async(tasks: BackgroundTasks) -> str:
        with pytest.raises(ValueError, match="cannot run async tasks"):
            tasks.add_task(jobs.async_record, "x")
        return "refused"

    assert TestClient(app).post("/async").json() == "refused"
    assert app.tasks.pending == 0


def test_work_that_cannot_travel_runs_in_process_through_inline() -> None:
    app = VelociPy(task_backend=RecordingBackend())
    ran: list[str] = []

    @app.post("/mixed")
    def mixed(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "first")
        tasks.inline.add_task(lambda: ran.append("closure"))
        return "ok"

    response = TestClient(app).post("/mixed")
    assert ran == ["closure"] and [e["args"] for e in response.envelopes] == [["first"]]


def test_the_handle_id_is_the_envelope_id_and_the_task_sees_it_on_the_worker() -> None:
    app = VelociPy(task_backend=RecordingBackend())
    handles: list[Any] = []

    @app.post("/ids")
    def ids(tasks: BackgroundTasks) -> str:
        handles.append(tasks.add_task(jobs.record_id, "one"))
        handles.append(tasks.add_task(jobs.record_id, "two"))
        return "ok"

    response = TestClient(app).post("/ids")
    assert [e["id"] for e in response.envelopes] == [h.id for h in handles]
    assert all(isinstance(h.id, str) and str(uuid.UUID(h.id)) == h.id for h in handles)
    assert [run["id"] for run in jobs.RUNS] == [h.id for h in handles]


def test_a_worker_runs_one_task_per_message_and_forwards_the_rest_whatever_the_outcome() -> None:
    batch = [
        Envelope(id="1", task="tests.queues.jobs:fail_id", name="fail_id", args=["a"]).to_dict(),
        Envelope(id="2", task="tests.queues.jobs:record_id", name="r", args=["b"]).to_dict(),
        Envelope(id="3", task="tests.queues.jobs:record_id", name="r", args=["c"]).to_dict(),
    ]
    forwarded: list[Sequence[Any]] = []
    first = run_next(batch, forward=forwarded.append)
    assert first.id == "1" and first.state is TaskState.FAILED
    assert [run["label"] for run in jobs.RUNS] == ["a"] and forwarded == [batch[1:]]
    second = run_next(forwarded[-1], forward=forwarded.append)
    assert second.state is TaskState.SUCCEEDED and forwarded[-1] == batch[2:]
    run_next(forwarded[-1], forward=forwarded.append)
    assert len(forwarded) == 2  # nothing left after the last
    assert [run["id"] for run in jobs.RUNS] == ["1", "2", "3"]


def test_a_rest_that_cannot_be_forwarded_is_logged_by_name_and_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = [
        Envelope(id=str(i), task="tests.queues.jobs:record", name="record", args=[str(i)]).to_dict()
        for i in (1, 2, 3)
    ]
    calls: list[Sequence[Any]] = []

    def broker_gone(rest: Sequence[Any]) -> None:
        calls.append(rest)
        raise ConnectionError("broker gone")

    with (
        caplog.at_level(logging.WARNING, logger="velocipy"),
        pytest.raises(ForwardFailed) as raised,
    ):
        run_next(batch, forward=broker_gone, forward_attempts=3, forward_backoff=0.01)
    # The task ran once; its forward was tried three times, then given up to the engine.
    assert [run["label"] for run in jobs.RUNS] == ["1"]
    assert calls == [batch[1:]] * 3 and raised.value.rest == batch[1:]
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert "attempt 1 of 3" in caplog.text and "attempt 2 of 3" in caplog.text
    assert "tests.queues.jobs:record [2], tests.queues.jobs:record [3]" in caplog.text


def test_a_forward_that_fails_then_goes_through_publishes_the_rest_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = [
        Envelope(id=str(i), task="tests.queues.jobs:record", name="record", args=[str(i)]).to_dict()
        for i in (1, 2)
    ]
    outcomes: list[BaseException | None] = [ConnectionError("refused"), TimeoutError(), None]
    forwarded: list[Sequence[Any]] = []

    def flaky(rest: Sequence[Any]) -> None:
        error = outcomes.pop(0)
        if error is not None:
            raise error
        forwarded.append(rest)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        run_next(batch, forward=flaky, forward_attempts=5, forward_backoff=0.05)
    # Two failures, paused 0.05 s then 0.1 s (the backoff doubles), then sent once.
    assert time.monotonic() - started >= 0.15
    assert forwarded == [batch[1:]] and outcomes == []
    assert "published the rest of a task batch at attempt 3" in caplog.text


def test_an_import_error_on_the_worker_is_logged_and_the_rest_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch = [
        Envelope(id="1", task="tests.queues.jobs:gone", name="gone").to_dict(),
        Envelope(id="2", task="tests.queues.jobs:record", name="record", args=["after"]).to_dict(),
    ]
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        handles = run_batch(batch)
    assert [h.state for h in handles] == [TaskState.FAILED, TaskState.SUCCEEDED]
    assert jobs.RUNS[0]["label"] == "after"
    assert any("cannot import" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_a_task_timeout_travels_and_applies_on_the_worker(caplog: pytest.LogCaptureFixture) -> None:
    app = VelociPy(task_backend=RecordingBackend())

    @app.post("/slow")
    def slow(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.slow, "s", 1.0).with_options(timeout=0.2)
        tasks.add_task(jobs.record, "next")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app).post("/slow")
    assert response.envelopes[0]["timeout"] == 0.2
    assert any("timed out after 0.2s" in r.getMessage() for r in caplog.records)
    assert "next" in [run.get("label") for run in jobs.RUNS]
    # A timed-out sync task keeps its thread (threads cannot be stopped): wait for its
    # last write, or it lands in `jobs.RUNS` during the next test of this worker.
    deadline = time.monotonic() + 5.0
    while not any(run["task"] == "slow-end" for run in jobs.RUNS):
        assert time.monotonic() < deadline, "the timed-out task's thread never finished"
        time.sleep(0.02)


def test_a_broker_that_does_not_answer_holds_no_request_past_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VelociPy(task_backend=Journal([], hang=3.0, deadline=0.3))
    hooked: list[tuple[str, str]] = []

    @app.on_task_error
    def hook(task: Any, error: BaseException) -> None:
        hooked.append((task.name, type(error).__name__))

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "welcome")
        return "ok"

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app, record_tasks=False).post("/signup")
    assert time.monotonic() - started < 2.0
    assert response.tasks[0].state is TaskState.FAILED
    assert hooked == [("tests.queues.jobs.record", "TaskTimedOut")]
    assert any("no answer within 0.3s" in r.getMessage() for r in caplog.records)


def test_before_response_answers_503_when_publishing_fails_and_fail_is_the_policy() -> None:
    events: list[str] = []
    app = VelociPy(
        task_backend=Journal(events, fail=True, publish="before_response", on_failure="fail")
    )

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "welcome")
        return "ok"

    response = TestClient(app, record_tasks=False).post("/signup")
    assert response.status_code == 503
    assert response.json() == {"detail": "Service Unavailable"}
    assert jobs.RUNS == [] and response.tasks[0].state is TaskState.FAILED


def test_before_response_publishes_before_the_status_line() -> None:
    events: list[str] = []
    app = VelociPy(task_backend=Journal(events, publish="before_response"))

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "welcome")
        return "ok"

    response = TestClient(app, record_tasks=False).post("/signup", run_tasks=False)
    # Nothing after the response has run, yet the batch is in the broker.
    assert response.status_code == 200 and events == ["publish"]
    assert response.tasks[0].state is TaskState.PUBLISHED


def test_the_inline_policy_runs_the_tasks_here_when_publishing_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VelociPy(task_backend=Journal([], fail=True, on_failure="inline"))

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "welcome")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app, record_tasks=False).post("/signup")
    assert response.tasks[0].state is TaskState.SUCCEEDED
    assert [run["label"] for run in jobs.RUNS] == ["welcome"]
    assert any("running them in this process instead" in r.getMessage() for r in caplog.records)


def test_engine_options_travel_and_split_the_batch() -> None:
    app = VelociPy(task_backend=RecordingBackend(queue="web"))

    @app.post("/opts")
    def opts(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "a")
        tasks.add_task(jobs.record, "b").with_options(queue="mail", priority=3, delay=0.0)
        return "ok"

    response = TestClient(app).post("/opts")
    first, second = response.envelopes
    assert first["queue"] == "web" and second["queue"] == "mail"
    assert second["priority"] == 3 and second["delay"] == 0.0


def test_the_in_process_backend_refuses_delay_and_accepts_the_rest() -> None:
    app = VelociPy()
    assert isinstance(app.task_backend, InProcess) and app.task_queue is None

    @app.post("/delay")
    def delay(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "x").with_options(backend="inline", queue="q", priority=1)
        tasks.add_task(jobs.record, "y").with_options(delay=5)
        return "ok"

    with pytest.raises(ValueError, match="delay= needs a queue backend"):
        TestClient(app).post("/delay")


def test_a_backend_refuses_options_it_cannot_honour_in_the_handler() -> None:
    class NoPriority(RecordingBackend):
        supports_priority = False

    app = VelociPy(task_backend=NoPriority())

    @app.post("/p")
    def p(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "x").with_options(priority=5)
        return "ok"

    with pytest.raises(ValueError, match="no per-task priority"):
        TestClient(app).post("/p")


def test_backend_settings_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match='needs publish="before_response"'):
        RecordingBackend(on_failure="fail")
    with pytest.raises(ValueError, match="publish must be one of"):
        RecordingBackend(publish="later")
    with pytest.raises(ValueError, match="deadline"):
        RecordingBackend(deadline=0)


def test_a_queue_backend_is_closed_at_shutdown() -> None:
    closed: list[bool] = []

    class Closing(RecordingBackend):
        def close(self) -> None:
            closed.append(True)

    app = VelociPy(task_backend=Closing())
    with TestClient(app):
        pass
    assert closed == [True]
    assert isinstance(types.SimpleNamespace(), object)


def test_the_example_app_publishes_its_tasks_for_the_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from examples.queue_app import app as example

    with caplog.at_level(logging.INFO, logger="examples.queue"):
        response = TestClient(example).post("/signup", params={"email": "ada@example.com"})
    assert response.status_code == 200
    assert [e["task"] for e in response.envelopes] == [
        "examples.queue_tasks:send_welcome",
        "examples.queue_tasks:update_crm",
    ]
    assert response.envelopes[0]["queue"] == "velocipy-example"
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("welcome mail to ada@example.com") for m in messages)
    assert "CRM updated for ada@example.com" in messages


def test_before_response_with_the_inline_policy_runs_the_tasks_after_the_response() -> None:
    app = VelociPy(
        task_backend=Journal([], fail=True, publish="before_response", on_failure="inline")
    )

    @app.post("/signup")
    def signup(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "first")
        tasks.add_task(jobs.record, "second")
        return "ok"

    response = TestClient(app, record_tasks=False).post("/signup", run_tasks=False)
    assert response.status_code == 200 and jobs.RUNS == []  # not before the response
    response.run_tasks()
    assert [run["label"] for run in jobs.RUNS] == ["first", "second"]
