"""The bounded task runner behind the WSGI adapter: order, the full-queue policy, the drain.

Exchanges come from a real app driven to their response by the sync driver, as
the adapter does; the runner then gets the rest of each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from velocipy import BackgroundTasks, VelociPy
from velocipy.adapters._drive import drive_sync
from velocipy.adapters._wsgi_process import LOOP, drain_deadline, set_drain_timeout
from velocipy.adapters.task_runner import SLOW, TaskRunner
from velocipy.core import Exchange, RequestHead, Respond

EVENTS: list[str] = []
RELEASE = threading.Event()


def step(name: str) -> None:
    EVENTS.append(name)


async def step_async(name: str) -> None:
    EVENTS.append(name)


def blocked(name: str) -> None:
    EVENTS.append(f"{name}:start")
    RELEASE.wait(10)
    EVENTS.append(name)


async def blocked_async(name: str) -> None:
    EVENTS.append(f"{name}:start")
    while not RELEASE.is_set():  # polls, so the loop stays free
        await asyncio.sleep(0.01)
    EVENTS.append(name)


app = VelociPy()


@app.get("/run/{names}")
def schedule(names: str, background_tasks: BackgroundTasks) -> None:
    for index, name in enumerate(names.split(",")):
        if name.startswith("ablock"):
            background_tasks.add_task(blocked_async, name)
        elif name.startswith("block"):
            background_tasks.add_task(blocked, name)
        elif name.startswith("a-"):
            background_tasks.add_task(step_async, name)
        else:
            background_tasks.add_task(step_async if index % 2 else step, name)


def responded(names: str) -> tuple[Exchange, Respond]:
    """An exchange whose response has just been sent: what the runner is handed."""
    exchange = app.exchange(RequestHead("GET", f"/run/{names}"))
    effect = drive_sync(
        exchange, exchange.start(), read_body=lambda limit: b"", run_coroutine=LOOP.run_coroutine
    )
    assert isinstance(effect, Respond)
    return exchange, effect


def submit(runner: TaskRunner, names: str) -> None:
    exchange, respond = responded(names)
    runner.submit(exchange, respond.tasks)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return LOOP.run_coroutine(coroutine)


@pytest.fixture(autouse=True)
def clean() -> Any:
    EVENTS.clear()
    RELEASE.clear()
    yield
    RELEASE.set()


def test_the_tasks_of_one_request_run_in_order_on_one_runner_thread() -> None:
    runner = TaskRunner(LOOP, threads=4)
    submit(runner, "a,b,c,d,e,f")
    assert wait_until(lambda: runner.pending == 0)
    assert EVENTS == ["a", "b", "c", "d", "e", "f"]
    assert runner.drain(time.monotonic() + 1)


def test_requests_run_in_parallel_up_to_the_thread_count() -> None:
    runner = TaskRunner(LOOP, threads=2, queue_size=10)
    submit(runner, "block1")
    assert wait_until(lambda: "block1:start" in EVENTS)
    time.sleep(SLOW * 1.5)  # a slow task: waiting work gets threads
    for name in ("block2", "x"):
        submit(runner, name)
    assert wait_until(lambda: {"block1:start", "block2:start"} <= set(EVENTS))
    time.sleep(0.05)
    assert "x" not in EVENTS  # both threads are busy; x waits in the queue
    RELEASE.set()
    assert wait_until(lambda: runner.pending == 0)
    assert EVENTS.index("x") > min(EVENTS.index("block1"), EVENTS.index("block2"))


def test_threads_start_for_waiting_work_once_tasks_prove_slow_up_to_the_cap() -> None:
    runner = TaskRunner(LOOP, threads=3, queue_size=10)
    assert runner.thread_count == 0  # nothing submitted, nothing started
    submit(runner, "block1")
    submit(runner, "block2")  # block1 has barely started: block2 waits for its thread
    assert wait_until(lambda: "block1:start" in EVENTS)
    assert runner.thread_count == 1
    time.sleep(SLOW * 1.5)  # now block1 is a slow task
    submit(runner, "block3")  # two waiting, the cap allows two more threads: both start
    submit(runner, "block4")  # the cap: waits in the queue
    assert wait_until(lambda: {"block2:start", "block3:start"} <= set(EVENTS))
    time.sleep(0.05)
    assert "block4:start" not in EVENTS
    assert runner.thread_count == 3
    RELEASE.set()
    assert wait_until(lambda: runner.pending == 0)
    assert "block4" in EVENTS
    assert runner.drain(time.monotonic() + 1)


def test_a_task_waiting_behind_one_that_turns_out_slow_soon_gets_a_thread() -> None:
    runner = TaskRunner(LOOP, threads=4)
    submit(runner, "block1")
    submit(runner, "next")  # block1 is not slow yet; nothing else will be submitted
    assert wait_until(lambda: "next" in EVENTS, timeout=SLOW * 20)
    assert "block1" not in EVENTS  # it did not wait for block1 to end
    assert runner.thread_count == 2
    RELEASE.set()
    assert wait_until(lambda: runner.pending == 0)
    assert runner.drain(time.monotonic() + 1)


def test_quick_tasks_keep_one_thread_even_in_a_burst() -> None:
    runner = TaskRunner(LOOP, threads=8)
    for number in range(200):
        submit(runner, f"quick{number}")
    assert wait_until(lambda: runner.pending == 0)
    assert len(EVENTS) == 200
    # One, unless this busy machine paused the thread mid-task for longer than SLOW.
    assert runner.thread_count <= 2
    assert runner.drain(time.monotonic() + 1)


SHORT_DONE: list[int] = []


def five_ms() -> None:
    time.sleep(0.005)
    SHORT_DONE.append(1)


short_app = VelociPy()


@short_app.post("/short")
def schedule_short(background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(five_ms)


def submit_short(runner: TaskRunner, count: int) -> None:
    for _ in range(count):
        exchange = short_app.exchange(RequestHead("POST", "/short"))
        effect = drive_sync(
            exchange, exchange.start(), read_body=lambda limit: b"", run_coroutine=run_coroutine
        )
        assert isinstance(effect, Respond)
        runner.submit(exchange, effect.tasks)


def test_a_steady_stream_of_short_tasks_gets_more_threads() -> None:
    # Issue 17, defect 4: no single 5 ms task is slow, so one thread worked off
    # ~180 tasks/s while the backlog grew. 1,000 of them on one thread take 5 s.
    SHORT_DONE.clear()
    runner = TaskRunner(LOOP, threads=16)
    started = time.monotonic()
    submit_short(runner, 1000)
    assert wait_until(lambda: runner.pending == 0, timeout=10)
    assert time.monotonic() - started < 2.5
    assert len(SHORT_DONE) == 1000
    assert runner.thread_count > 1
    assert runner.drain(time.monotonic() + 1)


def test_the_drain_finishes_a_backlog_of_short_tasks_within_its_deadline() -> None:
    # Issue 17, defect 4: a 10 s grace abandoned about half of 4,000 queued 5 ms tasks.
    SHORT_DONE.clear()
    runner = TaskRunner(LOOP, threads=64)
    submit_short(runner, 1500)  # 7.5 s on one thread
    assert runner.drain(time.monotonic() + 3)
    assert len(SHORT_DONE) == 1500


def test_idle_threads_stop_and_new_work_starts_one_again() -> None:
    runner = TaskRunner(LOOP, threads=2, idle_timeout=0.2)
    submit(runner, "block1")
    assert wait_until(lambda: "block1:start" in EVENTS)
    time.sleep(SLOW * 1.5)
    submit(runner, "block2")
    assert wait_until(lambda: {"block1:start", "block2:start"} <= set(EVENTS))
    assert runner.thread_count == 2
    RELEASE.set()
    assert wait_until(lambda: runner.thread_count == 0)
    submit(runner, "later")
    assert wait_until(lambda: "later" in EVENTS)
    assert runner.thread_count == 1
    assert runner.drain(time.monotonic() + 1)


def test_limits_are_checked() -> None:
    for options in ({"threads": 0}, {"queue_size": 0}, {"idle_timeout": 0.0}):
        with pytest.raises(ValueError):
            TaskRunner(LOOP, **options)  # type: ignore[arg-type]


def test_a_full_queue_runs_the_tasks_in_the_submitting_thread_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = TaskRunner(LOOP, threads=1, queue_size=1)
    submit(runner, "block1")
    assert wait_until(lambda: "block1:start" in EVENTS)
    submit(runner, "queued")  # fills the queue
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        submit(runner, "overflow")  # no room: runs right here, before submit returns
    assert EVENTS == ["block1:start", "overflow"]
    assert "queue full" in caplog.text
    RELEASE.set()
    assert wait_until(lambda: runner.pending == 0)
    assert EVENTS[-1] == "queued"


def test_the_drain_waits_for_running_and_queued_tasks() -> None:
    runner = TaskRunner(LOOP, threads=1)
    submit(runner, "block1,after")
    submit(runner, "later")
    assert wait_until(lambda: "block1:start" in EVENTS)
    threading.Timer(0.2, RELEASE.set).start()
    assert runner.drain(time.monotonic() + 5)
    assert EVENTS == ["block1:start", "block1", "after", "later"]


def test_the_drain_logs_every_task_it_abandons_by_name(caplog: pytest.LogCaptureFixture) -> None:
    runner = TaskRunner(LOOP, threads=1)
    submit(runner, "a,block1,after1,after2")
    submit(runner, "queued1,queued2")
    assert wait_until(lambda: "block1:start" in EVENTS)
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        assert not runner.drain(time.monotonic() + 0.2)
    messages = [record.getMessage() for record in caplog.records]
    assert any("blocked" in m and "still running" in m for m in messages), messages
    # after1/after2 (same request, not started) and the queued request's tasks:
    step_name = "tests.adapters.test_wsgi_task_runner.step"
    step_async_name = "tests.adapters.test_wsgi_task_runner.step_async"
    waiting = [m for m in messages if "stopped" in m]
    assert sum(step_name + " " in m for m in waiting) == 2  # after2 and queued1
    assert sum(step_async_name in m for m in waiting) == 2  # after1 and queued2
    assert all("GET /run/" in m for m in messages)
    RELEASE.set()
    assert wait_until(lambda: runner.pending == 0)  # the abandoned ones are not counted
    assert "after1" not in EVENTS  # the cut-off exchange skipped its abandoned tasks
    assert "queued1" not in EVENTS


def test_a_request_with_only_async_tasks_runs_on_the_loop_holding_no_thread() -> None:
    runner = TaskRunner(LOOP, threads=1)
    submit(runner, "ablock1,a-after")
    assert wait_until(lambda: "ablock1:start" in EVENTS)
    submit(runner, "sync-x")  # the only runner thread is free
    assert wait_until(lambda: "sync-x" in EVENTS)
    assert "ablock1" not in EVENTS
    RELEASE.set()
    assert wait_until(lambda: runner.pending == 0)
    assert EVENTS == ["ablock1:start", "sync-x", "ablock1", "a-after"]


def test_the_drain_cancels_async_tasks_at_the_deadline_and_the_core_logs_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = TaskRunner(LOOP, threads=1)
    submit(runner, "ablock1,a-after")
    assert wait_until(lambda: "ablock1:start" in EVENTS)
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        assert not runner.drain(time.monotonic() + 0.2)
    messages = [record.getMessage() for record in caplog.records]
    prefix = "tests.adapters.test_wsgi_task_runner"
    assert any(f"{prefix}.blocked_async for" in m and "interrupted" in m for m in messages)
    assert any(f"{prefix}.step_async for" in m and "abandoned" in m for m in messages)
    assert runner.pending == 0
    assert EVENTS == ["ablock1:start"]


def test_after_the_drain_late_work_runs_in_the_caller() -> None:
    runner = TaskRunner(LOOP, threads=1)
    assert runner.drain(time.monotonic() + 1)
    submit(runner, "late")
    assert EVENTS == ["late"]


def test_after_the_drain_deadline_late_work_is_abandoned_by_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A request the server was still finishing when the drain gave up: run in its
    # thread, its tasks would die unnamed when the process is killed.
    runner = TaskRunner(LOOP, threads=1)
    assert runner.drain(time.monotonic())
    with caplog.at_level(logging.WARNING, logger="velocipy"):
        submit(runner, "late,a-late")
    assert EVENTS == []
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert all("for GET /run/{names} abandoned: the server stopped first" in m for m in messages)


def test_the_drain_deadline_counts_from_the_stop_when_known(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from velocipy.adapters import _wsgi_process

    state = _wsgi_process._current()
    monkeypatch.setattr(state, "drain_timeout", None)
    monkeypatch.setattr(state, "worker", None)
    monkeypatch.setattr(state, "stop_time", None)
    assert drain_deadline(100.0) == 100.0 + _wsgi_process.DEFAULT_DRAIN_TIMEOUT
    set_drain_timeout(3.0)
    assert drain_deadline(100.0) == 103.0
    _wsgi_process.note_stop(98.0)
    assert drain_deadline(100.0) == 101.0

    class Cfg:
        graceful_timeout = 30
        timeout = 20

    class Worker:
        cfg = Cfg()

    monkeypatch.setattr(state, "drain_timeout", None)
    monkeypatch.setattr(state, "worker", Worker())
    assert drain_deadline(100.0) == 98.0 + 18.0  # min(30, 20) less a tenth (at least 1 s)


def test_a_forked_child_gets_its_own_threads_and_loop() -> None:
    # gunicorn --preload: the app (and maybe its threads) exist before the fork.
    runner = TaskRunner(LOOP, threads=1)
    submit(runner, "parent,parent-async")
    assert wait_until(lambda: runner.pending == 0)
    pid = os.fork()
    if pid == 0:  # the child: only os._exit, never back into pytest
        code = 2
        try:
            EVENTS.clear()
            submit(runner, "child,child-async")
            code = 0 if wait_until(lambda: EVENTS == ["child", "child-async"]) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
