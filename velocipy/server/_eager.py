"""Start an asyncio task and run its first step at once, in the caller's turn of the loop.

An ASGI app call needs a task of its own: it may run on after its response
(Starlette's background tasks do) while the connection serves the next
request. But most calls never wait for anything: they send their response
and return in one step. Scheduling that step as a new task costs the
connection a wait and a wake-up per request. Python 3.12 can start a task
*eagerly* (`eager_start=True`); this does the same on 3.11, which cannot:

- the task is created around a `_FirstStepDone` shell, so the loop's own first
  step of it continues where ours stopped;
- our step runs with the task as the loop's current task (`asyncio.current_task()`,
  anyio's cancel scopes and task groups see the task they will finish in) and in
  the task's own `contextvars` context, so the app cannot tell the difference;
- if the coroutine finished in our step, the task's step only reports it; if it
  waits on a future, the task's step hands that future to the task, which then
  waits on it as usual; if it yielded to the loop (a bare `yield`, as
  `asyncio.sleep(0)` does), the task's step is that turn, and goes on at once.

It uses asyncio's `_enter_task`/`_leave_task` (private, present from 3.7 to 3.13,
what the loop itself calls around every step); on 3.12+ the loop's own eager
start would do.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine, Generator
from typing import Any

try:  # the loop → task map `asyncio.current_task` reads, without its Python frame
    from asyncio.tasks import _current_tasks  # type: ignore[attr-defined]

    _current_task: Any = _current_tasks.get
except ImportError:  # pragma: no cover - a Python that keeps it elsewhere
    _current_task = asyncio.current_task

#: What our first step left for the task's: nothing more, a yielded value, a result, a failure.
_NOT_RUN, _YIELDED, _RETURNED, _RAISED = 0, 1, 2, 3


def start_now(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    context: contextvars.Context,
) -> asyncio.Task[Any]:
    """A task running `coro` in `context`, its first step already taken (see the docstring).

    Call it from a task or a callback of `loop`'s; exceptions of `coro` are the task's.
    """
    shell = _FirstStepDone(coro)
    task: asyncio.Task[Any] = loop.create_task(shell, context=context)  # type: ignore[call-arg]
    current = _current_task(loop)
    if current is not None:
        _leave_task(loop, current)
    _enter_task(loop, task)
    try:
        shell.value = context.run(coro.send, None)
    except StopIteration as stop:
        shell.state, shell.value = _RETURNED, stop.value
    except BaseException as error:  # the task's to report, on its own step
        shell.state, shell.value = _RAISED, error
    finally:
        _leave_task(loop, task)
        if current is not None:
            _enter_task(loop, current)
    return task


class _FirstStepDone(collections.abc.Coroutine):  # type: ignore[type-arg]
    """The coroutine a task runs: `coro`, whose first step may have been taken already."""

    __slots__ = ("coro", "state", "value")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.coro = coro
        #: Until told otherwise by `start_now`, the first step yielded `value`.
        self.state = _YIELDED
        self.value: Any = None

    def send(self, value: Any) -> Any:
        state = self.state
        if state == _YIELDED:
            self.state = _NOT_RUN  # from now on: a plain delegation
            awaited = self.value
            self.value = None
            if awaited is not None:
                return awaited  # a future: the task now waits on it itself
            # A bare yield (a turn of the loop): this step is that turn.
        elif state == _RETURNED:
            raise StopIteration(self.value)
        elif state == _RAISED:
            error, self.value = self.value, None
            raise error
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if self.state == _YIELDED:  # cancelled before the task's first step
            self.state, self.value = _NOT_RUN, None
        if val is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)  # pragma: no cover - the old signature

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:  # pragma: no cover - never awaited
        raise TypeError("a started task's coroutine cannot be awaited")

    # What `inspect.getcoroutinestate` reads (anyio asks it of tasks it may cancel).
    @property
    def cr_running(self) -> bool:
        return bool(self.coro.cr_running)  # type: ignore[attr-defined]

    @property
    def cr_suspended(self) -> bool:
        return self.state == _YIELDED or bool(getattr(self.coro, "cr_suspended", False))

    @property
    def cr_frame(self) -> Any:
        return self.coro.cr_frame  # type: ignore[attr-defined]

    @property
    def cr_code(self) -> Any:
        return self.coro.cr_code  # type: ignore[attr-defined]
