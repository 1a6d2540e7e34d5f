"""Start a coroutine eagerly: its first step now, an asyncio task only if it suspends.

`start_eagerly(loop, coroutine)` does what Python 3.12's `eager_start=True` does,
on 3.11 and on any loop (uvloop included): it runs the coroutine's first step
at once, as a task's first step would run, and returns None if the coroutine
finished there, or an `asyncio.Task` that drives the rest. The built-in server
starts a background flow this way where `drive_eagerly` does not take it on itself
(Python 3.10, or a flow whose first effect is not a plain async task), and an ASGI
app's call: a flow whose tasks never wait
(a log line, a counter, a dict update) then costs no task, no scheduled step,
no done callback and no turn of the event loop; measured on uvloop, that was
about 17,000 instructions of a `POST /signup` with one such task.

Theory of operation. The step must look to the code it runs exactly like the
first step of a task, or code that works under `create_task` breaks when it
suspends and resumes somewhere else:

- *The current task* is the task that will run the rest. Code that enters an
  anyio cancel scope or an `asyncio.timeout()` before its first `await` binds it
  to `asyncio.current_task()`, and must leave it in that same task. So the
  task object exists (allocated, not yet initialised, which schedules nothing)
  and is made current for the step; if the coroutine suspends, that very object
  is initialised with the rest. If it finishes, the object is dropped unseen.
- *The context* is a copy of the caller's, as `create_task` takes; the task
  keeps running in that same copy, so what the step set stays visible to the
  rest and nothing leaks into the caller (the connection serving requests).
- *The rest* (`_Resumed`) hands the task the future the coroutine waits on
  (already marked blocking by `Future.__await__`) on the task's first step,
  then passes every send and throw straight through. A cancellation before
  that first step is thrown into the coroutine where it waits, so a flow
  cancelled at the shutdown deadline still logs what it interrupts.

On Python 3.10 a task cannot be given its context, so there it is a plain
`create_task` (always a task, as before).
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any

# The C implementations: `asyncio.tasks` exports them under these private names.
_current_task = asyncio.current_task
_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
_Task = asyncio.Task
_new_task = _Task.__new__
_init_task = _Task.__init__
_copy_context = contextvars.copy_context

_NOTHING: Any = object()

#: `asyncio.Task(..., context=)` is 3.11's: the rest must run in the step's context.
EAGER = sys.version_info >= (3, 11)


def start_eagerly(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, Any]
) -> asyncio.Task[Any] | None:
    """Run `coroutine`'s first step now, as the first step of its own task.

    Call it on `loop`'s thread, while `loop` runs (from a task or a callback).

    Returns:
        None if the coroutine finished in that step; else the task running the rest.

    Raises:
        Whatever the coroutine raised in that step (its own exception, as a task
        would have stored it).
    """
    if not EAGER:  # pragma: no cover - Python 3.10
        return loop.create_task(coroutine)
    context = _copy_context()
    task = _new_task(_Task)
    caller = _current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, task)
    try:
        waiting = context.run(coroutine.send, None)
    except StopIteration:
        return None
    finally:
        _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)
    _init_task(task, _Resumed(coroutine, waiting), loop=loop, context=context)  # type: ignore[call-arg]
    return task


class _Resumed(collections.abc.Coroutine[Any, Any, Any]):
    """The rest of a coroutine whose first step ran already, for a task to drive.

    The task's first `send(None)` gets what the coroutine yielded in that step
    (the future it waits on); everything after goes to the coroutine itself.
    """

    __slots__ = ("_coroutine", "_waiting")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self._coroutine = coroutine
        self._waiting = waiting

    def send(self, value: Any) -> Any:
        waiting = self._waiting
        if waiting is not _NOTHING:
            self._waiting = _NOTHING
            if waiting is not None:
                return waiting
            # A bare yield (`asyncio.sleep(0)`: "a turn of the loop, then go on"): the
            # task's first step comes a turn after this one already, so it goes on now
            # rather than ask for a second turn.
        return self._coroutine.send(value)

    def throw(self, *error: Any) -> Any:
        # Before the task's first step too: the coroutine waits where it suspended.
        self._waiting = _NOTHING
        return self._coroutine.throw(*error)

    def close(self) -> None:
        self._waiting = _NOTHING
        self._coroutine.close()

    def __await__(self) -> Generator[Any, Any, Any]:
        # Only tasks drive this object; awaiting it directly works the same way.
        step: Any = self.send
        argument: Any = None
        while True:
            try:
                yielded = step(argument)
            except StopIteration as stop:
                return stop.value
            try:
                argument = yield yielded
            except BaseException as error:
                step, argument = self.throw, error
            else:
                step = self.send
