"""Task handles, options, error hooks, context and counts, driven by hand."""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import pytest

from tests.core.handdrive import head, perform, serve
from velocipy.core import (
    Application,
    BackgroundTasks,
    Call,
    Done,
    Exchange,
    HTTPException,
    Respond,
    Task,
    TaskState,
    TaskTimedOut,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.fixture(autouse=True)
def fresh_request_id() -> Any:
    token = request_id.set("-")
    yield
    request_id.reset(token)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def build(**options: Any) -> tuple[Application, list[Any], list[Task]]:
    clock = FakeClock()
    app = Application(clock=clock, **options)
    log: list[Any] = []
    handles: list[Task] = []

    def ok(name: str) -> None:
        log.append((name, request_id.get()))

    async def ok_async(name: str) -> None:
        log.append((name, request_id.get()))

    def broken() -> None:
        raise ValueError("broken task")

    @app.post("/mixed")
    def mixed(tasks: BackgroundTasks) -> str:
        request_id.set("req-1")
        handles.append(tasks.add_task(ok, "sync"))
        handles.append(tasks.add_task(ok_async, "async").with_options(name="custom-name"))
        handles.append(tasks.add_task(broken))
        handles.append(tasks.add_task(ok, "after"))
        return "done"

    @app.post("/failing/{how}")
    def failing(how: str, tasks: BackgroundTasks) -> None:
        handles.append(tasks.add_task(ok, "on-success"))
        handles.append(tasks.add_task(ok, "on-error").with_options(run_on="error"))
        handles.append(tasks.add_task(ok, "always").with_options(run_on="always"))
        if how == "http":
            raise HTTPException(400, "bad")
        if how == "crash":
            raise RuntimeError("crash")

    @app.post("/slow")
    def slow(tasks: BackgroundTasks) -> None:
        handles.append(tasks.add_task(ok, "slow").with_options(timeout=0.5))
        handles.append(tasks.add_task(ok, "next"))

    return app, log, handles


def test_handles_move_through_states_with_timestamps_and_errors() -> None:
    app, log, handles = build()
    out = serve(app, "POST", "/mixed")
    assert out.status == 200
    assert [t.state for t in handles] == [
        TaskState.SUCCEEDED,
        TaskState.SUCCEEDED,
        TaskState.FAILED,
        TaskState.SUCCEEDED,
    ]
    assert handles[1].name == "custom-name"
    assert isinstance(handles[2].error, ValueError)
    first = handles[0]
    assert first.created_at is not None and first.started_at is not None
    assert first.finished_at is not None and first.duration == 1.0
    assert first.route == "POST /mixed" and first.method == "POST"
    assert all(t.done for t in handles)
    assert repr(first).endswith("succeeded>")


def test_each_task_sees_the_request_context_sync_and_async() -> None:
    app, log, _ = build()
    serve(app, "POST", "/mixed")  # in a context of its own, as servers do
    assert log == [("sync", "req-1"), ("async", "req-1"), ("after", "req-1")]
    assert request_id.get() == "-"


def test_task_log_records_carry_structured_fields(caplog: pytest.LogCaptureFixture) -> None:
    app, _, handles = build()
    with caplog.at_level(logging.DEBUG, logger="velocipy"):
        serve(app, "POST", "/mixed")
    failed = next(r for r in caplog.records if "failed" in r.getMessage())
    assert failed.task_id == handles[2].id  # type: ignore[attr-defined]
    assert failed.task_name == handles[2].name  # type: ignore[attr-defined]
    assert failed.route == "POST /mixed"  # type: ignore[attr-defined]
    assert failed.method == "POST"  # type: ignore[attr-defined]
    assert failed.duration == 1.0  # type: ignore[attr-defined]
    succeeded = [r for r in caplog.records if "succeeded" in r.getMessage()]
    assert len(succeeded) == 3 and all(r.levelno == logging.DEBUG for r in succeeded)


@pytest.mark.parametrize(
    ("how", "ran", "skipped"),
    [
        ("none", ["on-success", "always"], ["on-error"]),
        ("http", ["on-error", "always"], ["on-success"]),
        ("crash", ["on-error", "always"], ["on-success"]),
    ],
)
def test_run_on_policy(how: str, ran: list[str], skipped: list[str]) -> None:
    app, log, handles = build()
    out = serve(app, "POST", f"/failing/{how}")
    assert out.status == {"none": 200, "http": 400, "crash": 500}[how]
    assert [name for name, _ in log] == ran
    by_name = {t.args[0]: t.state for t in handles}
    assert [n for n, s in by_name.items() if s is TaskState.SKIPPED] == skipped
    # Error-path tasks are released with the error response, only after it is sent.
    assert [t.args[0] for t in out.respond.tasks] == ran


def test_a_timed_out_task_is_logged_and_the_next_one_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, log, handles = build()
    contextvars.copy_context().run(check_timeout, app, log, handles, caplog)


def check_timeout(
    app: Application, log: list[Any], handles: list[Task], caplog: pytest.LogCaptureFixture
) -> None:
    exchange = app.exchange(head("POST", "/slow"))
    effect = exchange.start()
    assert isinstance(effect, Call)
    respond = exchange.send(perform(effect))
    assert isinstance(respond, Respond)
    effect = exchange.send(None)
    assert isinstance(effect, Call) and effect.timeout == 0.5
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        effect = exchange.throw(TaskTimedOut(0.5))
    assert isinstance(effect, Call) and effect.timeout is None
    assert exchange.send(perform(effect)) == Done()
    assert handles[0].state is TaskState.TIMED_OUT
    assert "timed out after 0.5s (a sync task cannot be stopped" in caplog.text
    assert log == [("next", "-")]


def test_error_hooks_see_failures_and_timeouts_and_their_own_errors_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _, _ = build()
    seen: list[tuple[str, str]] = []

    @app.on_task_error
    async def record(task: Task, error: BaseException) -> None:
        seen.append((task.name, type(error).__name__))

    def bad_hook(task: Task, error: BaseException) -> None:
        raise KeyError("hook broke")

    app.add_task_error_handler(bad_hook)
    serve(app, "POST", "/mixed")
    assert seen == [("tests.core.test_task_handles.build.<locals>.broken", "ValueError")]
    assert "Task-error hook" in caplog.text and "hook broke" in caplog.text


def test_registry_counts_and_running_names() -> None:
    app, _, handles = build()
    exchange = app.exchange(head("POST", "/mixed"))
    effect = exchange.start()
    effect = exchange.send(perform(effect))
    assert app.tasks.pending == 4 and app.tasks.running == 0
    effect = exchange.send(None)
    assert app.tasks.running == 1 and app.tasks.running_names() == [handles[0].name]
    assert app.tasks.running_tasks() == [handles[0]]
    while not isinstance(effect, Done):
        try:
            value = perform(effect)  # type: ignore[arg-type]
        except Exception as error:
            effect = exchange.throw(error)
        else:
            effect = exchange.send(value)
    snapshot = app.tasks.snapshot()
    assert snapshot["pending"] == 0 and snapshot["running"] == 0
    assert snapshot["succeeded"] == 3 and snapshot["failed"] == 1
    assert snapshot["running_names"] == []
    assert "pending=0" in repr(app.tasks)


def test_pending_limit_refuses_with_an_error_log(caplog: pytest.LogCaptureFixture) -> None:
    app, log, handles = build(max_pending_tasks=2)
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        out = serve(app, "POST", "/mixed")
    assert out.status == 200 and log == []
    assert all(t.state is TaskState.ABANDONED for t in handles)
    assert caplog.text.count("more than 2 tasks are pending app-wide") == 4
    assert app.tasks.count("abandoned") == 4


def test_a_closed_exchange_settles_its_tasks_as_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _, handles = build()
    exchange = app.exchange(head("POST", "/mixed"))
    effect = exchange.start()
    exchange.send(perform(effect))  # Respond: tasks released, not run
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        exchange.close()
    assert all(t.state is TaskState.ABANDONED for t in handles)
    assert caplog.text.count("cut short") == 4
    assert app.tasks.pending == 0


def _drive_to_call(exchange: Exchange, purpose: str) -> Call:
    """Perform effects until the exchange yields a `Call` with `purpose` (not performed)."""
    effect = exchange.start()
    while not (type(effect) is Call and effect.purpose == purpose):
        assert not isinstance(effect, Done), f"no {purpose} call came"
        if type(effect) is Respond:  # delivered
            effect = exchange.send(None)
            continue
        try:
            value = perform(effect)  # type: ignore[arg-type]
        except Exception as error:
            effect = exchange.throw(error)
        else:
            effect = exchange.send(value)
    return effect


def test_a_flow_closed_while_its_tasks_run_abandons_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, log, handles = build()
    exchange = app.exchange(head("POST", "/mixed"))
    _drive_to_call(exchange, "task")  # the first task is running
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        exchange.close()
    assert log == []
    assert handles[0].state is TaskState.CANCELLED
    assert all(t.state is TaskState.ABANDONED for t in handles[1:])
    assert caplog.text.count("abandoned") == 3
    assert app.tasks.pending == 0 and app.tasks.running == 0


def test_a_flow_closed_in_an_error_hook_abandons_the_tasks_after_the_failed_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, log, handles = build()
    app.on_task_error(lambda task, error: None)
    exchange = app.exchange(head("POST", "/mixed"))
    _drive_to_call(exchange, "task_error_hook")  # `broken` failed; its hook is called
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        exchange.close()
    assert [name for name, _ in log] == ["sync", "async"]
    assert handles[2].state is TaskState.FAILED
    assert handles[3].state is TaskState.ABANDONED
    assert caplog.text.count("cut short") == 1
    assert app.tasks.pending == 0 and app.tasks.running == 0


def test_options_are_validated_and_frozen_once_started() -> None:
    tasks = BackgroundTasks()
    handle = tasks.add_task(print)
    with pytest.raises(ValueError, match="timeout"):
        handle.with_options(timeout=0)
    with pytest.raises(ValueError, match="run_on"):
        handle.with_options(run_on="sometimes")
    assert handle.with_options(timeout=1, name="n", run_on="always") is handle
    assert (handle.timeout, handle.name, handle.run_on) == (1.0, "n", "always")
    assert list(tasks) == [handle]
    handle.state = TaskState.SUCCEEDED
    with pytest.raises(RuntimeError, match="already succeeded"):
        handle.with_options(name="late")
    assert handle.duration is None


def test_task_function_keywords_named_like_options_are_left_alone() -> None:
    handle = BackgroundTasks().add_task(print, timeout=3, name="mine", run_on="x")
    assert handle.kwargs == {"timeout": 3, "name": "mine", "run_on": "x"}
    assert handle.timeout is None and handle.run_on == "success"


def test_a_task_given_up_on_while_running_then_finishing_keeps_the_counts_right(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A WSGI drain marks a sync task it cannot wait for abandoned while it still runs;
    when the thread gets to finish it, the counts move from abandoned, not running."""
    from velocipy.core._tasks import log_abandoned

    app, _, handles = build()
    exchange = app.exchange(head("POST", "/mixed"))
    effect = exchange.start()
    exchange.send(perform(effect))  # Respond
    effect = exchange.send(None)  # the first task starts
    assert app.tasks.running == 1
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        log_abandoned([handles[0]], "POST /mixed", "still running at the drain deadline")
    assert handles[0].state is TaskState.ABANDONED and app.tasks.running == 0
    effect = exchange.send(perform(effect))  # ... and then it returns
    assert handles[0].state is TaskState.SUCCEEDED
    assert app.tasks.running_names() == [handles[1].name]  # the next one runs
    assert app.tasks.count("abandoned") == 0 and app.tasks.count("succeeded") == 1


def test_describe_names_the_first_running_tasks_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 17: a shutdown line once named 4,705 tasks. It names ten; DEBUG has them all.
    app = Application()

    @app.post("/one")
    def one(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(lambda: None).with_options(name=f"task-{len(started):02d}")

    started: list[Exchange] = []  # kept alive: a collected exchange settles its tasks
    for _ in range(30):
        exchange = app.exchange(head("POST", "/one"))
        assert isinstance(exchange.send(perform(exchange.start())), Respond)
        assert isinstance(exchange.send(None), Call)  # its task is running now
        started.append(exchange)
    first_ten = ", ".join(f"task-{number:02d}" for number in range(10))
    assert app.tasks.describe() == f"30 running ({first_ten} and 20 more)"
    assert app.tasks.describe(limit=None).count("task-") == 30
    with caplog.at_level(logging.DEBUG, logger="velocipy"):
        app.tasks.log_every_name(logging.getLogger("velocipy"))
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and record.getMessage().count("task-") == 30
    for exchange in started:
        # Settled here: left to the collector, they would log their interrupted tasks
        # in whichever test happens to run when it finds them.
        exchange.close()
