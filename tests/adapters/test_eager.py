"""Eager start (`start_eagerly`): a coroutine's first step at once, a task only if it waits.

Each case runs on asyncio and on uvloop. What is checked is what a coroutine
can see: it behaves as under `create_task` (same current task before and after
it suspends, its own context, cancellation delivered where it waits), and a
coroutine that never waits is over, side effects done, before the call returns.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import pytest

from velocipy.adapters._eager import EAGER, start_eagerly

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


@pytest.mark.parametrize("loop", LOOPS)
def test_a_coroutine_that_never_waits_finishes_before_the_call_returns_with_no_task(
    loop: str,
) -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append(request_id.get())

    async def main() -> None:
        running = asyncio.get_running_loop()
        request_id.set("r1")
        before = asyncio.all_tasks()
        assert start_eagerly(running, quick()) is None
        assert done == ["r1"]  # ran in a copy of the caller's context
        assert asyncio.all_tasks() == before

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_coroutine_that_waits_goes_on_in_the_task_it_started_in(loop: str) -> None:
    seen: list[Any] = []

    async def waits() -> str:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0.01)
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        return "finished"

    async def main() -> None:
        running = asyncio.get_running_loop()
        caller = asyncio.current_task()
        task = start_eagerly(running, waits())
        assert task is not None and len(seen) == 1
        assert asyncio.current_task() is caller  # the caller's task is current again
        assert await task == "finished"
        assert seen == [task, task]
        assert task is not caller

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_cancel_scopes_and_timeouts_entered_before_the_first_wait_keep_working(
    loop: str,
) -> None:
    outcomes: list[str] = []

    async def scoped() -> None:
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(5)
        outcomes.append(f"anyio cancelled={scope.cancelled_caught}")
        if sys.version_info >= (3, 11):
            try:
                async with asyncio.timeout(0.05):
                    await asyncio.sleep(5)
            except TimeoutError:
                outcomes.append("asyncio timed out")
        else:  # pragma: no cover
            outcomes.append("asyncio timed out")

    async def main() -> None:
        task = start_eagerly(asyncio.get_running_loop(), scoped())
        assert task is not None
        with anyio.fail_after(5):
            await task

    run(loop, main)
    assert outcomes == ["anyio cancelled=True", "asyncio timed out"]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_cancel_before_the_task_first_runs_reaches_the_coroutine_where_it_waits(
    loop: str,
) -> None:
    events: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            events.append("cancelled where it waited")
            raise

    async def main() -> None:
        task = start_eagerly(asyncio.get_running_loop(), waits())
        assert task is not None
        task.cancel()  # before the task's first step: it has not run on its own yet
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    run(loop, main)
    assert events == ["cancelled where it waited"]


@pytest.mark.parametrize("loop", LOOPS)
def test_context_changes_stay_with_the_coroutine_and_never_reach_the_caller(loop: str) -> None:
    seen: list[str] = []

    async def sets() -> None:
        request_id.set("task")
        await asyncio.sleep(0)
        seen.append(request_id.get())

    async def main() -> None:
        request_id.set("caller")
        task = start_eagerly(asyncio.get_running_loop(), sets())
        assert request_id.get() == "caller"
        assert task is not None
        await task
        assert request_id.get() == "caller"

    run(loop, main)
    assert seen == ["task"]


@pytest.mark.parametrize("loop", LOOPS)
def test_an_exception_in_the_first_step_is_raised_to_the_caller(loop: str) -> None:
    async def fails() -> None:
        raise ValueError("at once")

    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise ValueError("later")

    async def main() -> None:
        running = asyncio.get_running_loop()
        caller = asyncio.current_task()
        with pytest.raises(ValueError, match="at once"):
            start_eagerly(running, fails())
        assert asyncio.current_task() is caller
        task = start_eagerly(running, fails_later())
        assert task is not None
        with pytest.raises(ValueError, match="later"):
            await task

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_it_can_be_called_from_a_loop_callback_with_no_current_task(loop: str) -> None:
    results: list[Any] = []

    async def waits() -> str:
        await asyncio.sleep(0)
        return "done"

    async def main() -> None:
        running = asyncio.get_running_loop()
        started = asyncio.Event()

        def callback() -> None:
            results.append(asyncio.current_task())
            results.append(start_eagerly(running, waits()))
            results.append(asyncio.current_task())
            started.set()

        running.call_soon(callback)
        await started.wait()
        assert results[0] is None and results[2] is None
        assert await results[1] == "done"

    run(loop, main)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_bare_yield_in_the_first_step_goes_on_one_turn_later_not_two(loop: str) -> None:
    # `asyncio.sleep(0)` asks to go on after what is ready at that moment: the
    # task's first step is exactly that turn (scheduled when the step yielded),
    # so callbacks scheduled after the start come after the rest, as FIFO wants.
    order: list[str] = []

    async def turn_then_finish() -> None:
        order.append("first step")
        await asyncio.sleep(0)
        order.append("rest")

    async def main() -> None:
        running = asyncio.get_running_loop()
        task = start_eagerly(running, turn_then_finish())
        assert task is not None
        running.call_soon(order.append, "scheduled after the start")
        await task

    run(loop, main)
    assert order == ["first step", "rest", "scheduled after the start"]
