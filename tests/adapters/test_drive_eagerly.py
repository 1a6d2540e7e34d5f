"""`drive_eagerly`: the rest of an exchange (its tasks) begun on the spot, a task only if it waits.

The built-in server hands every delivered exchange's rest to it on asyncio. Each
case drives a real app's exchange by hand to its response, then gives the rest
to `drive_eagerly`, on asyncio and on uvloop, and checks what the background-task
contract promises (order, failure isolation and logging, each task in its own
context, counts) plus what a task can see of the event loop: the same current
task before and after it waits (a cancel scope entered before its first `await`
is left in the task that entered it), and a cancellation logged as such.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest

from velocipy import BackgroundTasks, VelociPy
from velocipy.adapters._drive import drive_async, drive_eagerly
from velocipy.adapters._eager import EAGER
from velocipy.core import Call, Done, RequestHead, Respond

pytestmark = pytest.mark.skipif(not EAGER, reason="Python 3.10 starts a plain task")

LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(not importlib.util.find_spec("uvloop"), reason="no uvloop"),
    ),
]

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def run(loop: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


async def no_body(limit: int, size: int = 0) -> Any:
    raise AssertionError("no body is read after the response")


async def in_thread(call: Call) -> Any:
    return call.fn(*call.args, **call.kwargs)


def app_with(*tasks: Callable[..., Any]) -> VelociPy:
    """An app whose `POST /go` sets a context value and schedules `tasks`, in order."""
    app = VelociPy()

    @app.post("/go")
    async def go(background_tasks: BackgroundTasks) -> dict[str, str]:
        request_id.set("r1")
        for task in tasks:
            background_tasks.add_task(task)
        return {"status": "ok"}

    return app


async def responded(app: VelociPy) -> tuple[Any, Any]:
    """The exchange of one `POST /go`, driven to its response, and its rest."""
    head = RequestHead("POST", "/go", b"", [], "1.1", "http", None, None)
    exchange = app.exchange(head)
    effect = await drive_async(exchange, exchange.start(), read_body=no_body, run_sync=in_thread)
    assert type(effect) is Respond and effect.status == 200
    return exchange, exchange.send(None)


@pytest.mark.parametrize("loop", LOOPS)
def test_tasks_that_never_wait_are_over_before_the_call_returns(loop: str) -> None:
    seen: list[str] = []

    async def first() -> None:
        seen.append("first " + request_id.get())
        request_id.set("set by a task")  # stays in that task's own context

    async def second() -> None:
        seen.append("second " + request_id.get())

    app = app_with(first, second)

    async def main() -> None:
        exchange, rest = await responded(app)
        before = asyncio.all_tasks()
        task = drive_eagerly(
            asyncio.get_running_loop(), exchange, rest, read_body=no_body, run_sync=in_thread
        )
        assert task is None
        assert asyncio.all_tasks() == before  # no task made for them
        assert request_id.get() == "r1"  # the handler's value (it ran here); no task's

    run(loop, main)
    assert seen == ["first r1", "second r1"]
    assert app.tasks.succeeded == 2 and app.tasks.pending == app.tasks.running == 0


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_that_waits_goes_on_in_the_task_that_was_current_for_its_first_step(
    loop: str,
) -> None:
    seen: list[Any] = []

    async def waits() -> None:
        with anyio.CancelScope():  # entered before the first await, left after it
            seen.append(asyncio.current_task())
            await asyncio.sleep(0.01)
            seen.append(asyncio.current_task())
        seen.append(request_id.get())

    async def after() -> None:
        seen.append("after")

    app = app_with(waits, after)

    async def main() -> None:
        exchange, rest = await responded(app)
        task = drive_eagerly(
            asyncio.get_running_loop(), exchange, rest, read_body=no_body, run_sync=in_thread
        )
        assert isinstance(task, asyncio.Task)
        assert seen == [task]  # the first step ran already, as that task
        assert app.tasks.running == 1
        await task
        assert exchange.phase.name == "DONE"

    run(loop, main)
    assert seen[1] is seen[0] and seen[2:] == ["r1", "after"]
    assert app.tasks.succeeded == 2


@pytest.mark.parametrize("loop", LOOPS)
def test_a_failing_task_is_logged_and_the_next_one_runs(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def fails() -> None:
        raise RuntimeError("task failed on purpose")

    class Exit(BaseException):
        pass

    async def exits() -> None:  # a BaseException of a task is that task's failure
        raise Exit()

    async def last() -> None:
        seen.append("last")

    app = app_with(fails, exits, last)

    async def main() -> None:
        exchange, rest = await responded(app)
        assert (
            drive_eagerly(
                asyncio.get_running_loop(), exchange, rest, read_body=no_body, run_sync=in_thread
            )
            is None
        )

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        run(loop, main)
    assert seen == ["last"]
    assert "fails for POST /go failed" in caplog.text and "task failed on purpose" in caplog.text
    assert "exits for POST /go failed (Exit: contained" in caplog.text
    assert app.tasks.failed == 2 and app.tasks.succeeded == 1


@pytest.mark.parametrize("loop", LOOPS)
def test_a_sync_task_after_a_plain_one_runs_in_order_in_a_task(loop: str) -> None:
    seen: list[str] = []

    async def plain() -> None:
        seen.append("plain")

    def sync() -> None:
        seen.append("sync " + request_id.get())

    app = app_with(plain, sync)

    async def main() -> None:
        exchange, rest = await responded(app)
        task = drive_eagerly(
            asyncio.get_running_loop(), exchange, rest, read_body=no_body, run_sync=in_thread
        )
        assert seen == ["plain"] and isinstance(task, asyncio.Task)
        await task

    run(loop, main)
    assert seen == ["plain", "sync r1"]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_waiting_task_cancelled_at_a_stop_is_logged_with_the_ones_it_cut_off(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def sleeps() -> None:
        await asyncio.sleep(30)

    async def never() -> None:
        raise AssertionError("must not run")

    app = app_with(sleeps, never)

    async def main() -> None:
        exchange, rest = await responded(app)
        task = drive_eagerly(
            asyncio.get_running_loop(), exchange, rest, read_body=no_body, run_sync=in_thread
        )
        assert task is not None
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING, logger="velocipy"):
        run(loop, main)
    assert "sleeps for POST /go interrupted (CancelledError)" in caplog.text
    assert "never for POST /go abandoned" in caplog.text
    assert app.tasks.cancelled == 1 and app.tasks.abandoned == 1


def test_done_and_other_effects() -> None:
    async def main() -> None:
        exchange, rest = await responded(app_with())
        assert type(rest) is Done
        loop = asyncio.get_running_loop()
        assert drive_eagerly(loop, exchange, rest, read_body=no_body, run_sync=in_thread) is None

    asyncio.run(main())


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_whose_first_wait_is_a_bare_yield_goes_on_in_the_next_turn(loop: str) -> None:
    # `await asyncio.sleep(0)` asks for one turn of the loop. The rest of the flow is a
    # task whose first step is already a turn later: it goes on there, as any task would
    # after one turn, not after a second one.
    seen: list[str] = []

    async def yields_once() -> None:
        await asyncio.sleep(0)
        seen.append("went on")

    async def main() -> None:
        exchange, rest = await responded(app_with(yields_once))
        task = drive_eagerly(
            asyncio.get_running_loop(), exchange, rest, read_body=no_body, run_sync=in_thread
        )
        assert task is not None and seen == []
        await asyncio.sleep(0)  # one turn: the flow's task steps before this resumes
        assert seen == ["went on"]
        await task

    run(loop, main)
