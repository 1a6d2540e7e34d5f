"""The two drivers: the only code that performs the core's effects.

`drive_sync` serves WSGI and the TestClient (async user code goes to an
injected `run_coroutine`); `drive_async` serves ASGI and the socket server
(sync user code goes to an injected `run_sync`, normally a worker thread).
Both run an exchange until it needs its response sent (`Respond`) or is over
(`Done`), and return that effect; the adapter sends the response, then calls
the driver again with `exchange.send(None)` to run the background tasks and
cleanup wherever it chooses. `drive_eagerly` is that second call begun on the
spot, for the built-in server on asyncio: plain async tasks whose first step
finishes them run right there, and only a flow that waits becomes a task.

An adapter's `read_body` performs both body effects: `read_body(limit)` for
`ReadBody` (the whole body, as bytes) and `read_body(limit, size)` for
`ReadChunk` (the next piece, as `(data, more)`). Under `drive_async` it returns
an awaitable of that, or, for `ReadBody` only, the `bytes` themselves when it has
them at once. One callable for both keeps
requests that never stream from paying for a second reader. `OpenSpool` (a
temporary file for an upload) is answered by `open_spool`, in a worker thread
under the async driver. `OpenBody` is answered with `perform`, the same three
answers packed in an async function for a `Request` to use from inside the
handler (`request.stream()`): a read, a spool, a spool write, each performed as
here (under the sync driver, in a worker thread of the loop running the handler).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import types
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from velocipy.adapters._contexts import InContext
from velocipy.adapters._eager import _NOTHING, EAGER, _Resumed, start_eagerly
from velocipy.adapters._spool import open_spool
from velocipy.core import (
    Call,
    CallNext,
    ContainedBaseException,
    Done,
    Effect,
    Exchange,
    OpenBody,
    OpenSpool,
    ReadBody,
    ReadChunk,
    Respond,
    StreamBody,
    TaskTimedOut,
)
from velocipy.core._tasks import run_in_context

#: A sync callable that returned a coroutine (a lambda around an async function, say)
#: is awaited. `inspect.iscoroutine` would be a Python call on every sync call.
_Coroutine = types.CoroutineType
_Function = types.FunctionType

#: Runs a sync `Call` in a worker thread. For `purpose == "task"` it must abandon the
#: thread when cancelled (anyio's `abandon_on_cancel=True`), so that a task timeout or
#: a shutdown deadline is not held up by a thread that cannot be stopped.
RunSync = Callable[[Call], Awaitable[Any]]
RunCoroutine = Callable[[Coroutine[Any, Any, Any]], Any]


def drive_sync(
    exchange: Exchange,
    effect: Effect,
    *,
    read_body: Callable[..., Any],
    run_coroutine: RunCoroutine,
) -> Respond | Done:
    """Perform effects in this thread until `Respond` or `Done`, and return it.

    A `BaseException` from user code is that call's failure (see "Contained" below),
    except the `CancelledError` of an async call whose event loop stopped under
    it: after the response that is thrown in (the core logs what it interrupts);
    either way it goes up.
    """
    while True:
        kind = type(effect)
        if kind is Call:
            call: Call = effect  # type: ignore[assignment]
            try:
                if call.purpose == "task":
                    if call.timeout is None and call.started is None:
                        # No slot to take, no deadline to watch: run it right here.
                        result = call.fn(*call.args, **call.kwargs)
                        if call.is_async:
                            result = run_coroutine(result)
                    else:
                        result = _run_task_sync(exchange, call, run_coroutine)
                else:
                    result = call.fn(*call.args, **call.kwargs)
                    if call.is_async or type(result) is _Coroutine:
                        result = run_coroutine(result)
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as error:
                if type(error) is not asyncio.CancelledError:
                    effect = exchange.throw(ContainedBaseException(error))
                else:
                    # The loop running an async call was stopped (process exit) and
                    # cancelled it: the core logs what it interrupts, then it goes up.
                    if call.purpose in AFTER_RESPONSE:
                        exchange.throw(error)
                    raise
            else:
                effect = exchange.send(result)
        elif kind is ReadBody:
            try:
                body = read_body(effect.limit)  # type: ignore[union-attr]
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(body)
        elif kind is Respond or kind is Done:
            # Before the rare effects: every drive ends here, most of them after a
            # single call.
            return effect  # type: ignore[return-value]
        elif kind is ReadChunk:
            try:
                piece = read_body(effect.limit, effect.size)  # type: ignore[union-attr]
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(piece)
        elif kind is OpenSpool:
            try:
                spool = open_spool()
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(spool)
        elif kind is OpenBody:  # only requests left for the `Request` to read yield it
            effect = exchange.send(_perform_sync(read_body))
        elif kind is CallNext:  # only apps with HTTP middleware yield it
            try:
                result = _call_middleware_sync(effect, read_body, run_coroutine)  # type: ignore[arg-type]
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as error:
                if type(error) is asyncio.CancelledError:
                    raise
                effect = exchange.throw(ContainedBaseException(error))
            else:
                effect = exchange.send(result)
        else:
            raise TypeError(f"not an effect: {effect!r}")


_OPEN_SPOOL = Call(open_spool, (), {}, False, "spool")

# Contained: a `BaseException` (SystemExit, KeyboardInterrupt, a class of the user's
# own) raised by any call of user code (a handler, a dependency, an exception handler,
# a middleware, a task, its error hook, a cleanup) is a failure of that call, thrown
# into the exchange as `ContainedBaseException`: before the response the client gets
# a 500, after it the next task runs, and the server goes on either way (as uvicorn
# answers 500 to an ASGI app that raised one). Only the driver's own cancellation
# interrupts a flow; a real Ctrl-C or SIGTERM reaches the servers as a signal, which
# they handle themselves, not as an exception inside user code.

#: The calls made after the response: a cancellation (shutdown) of one of them is
#: thrown into the exchange before it goes up, so the core logs what it cut off.
AFTER_RESPONSE = frozenset({"task", "task_error_hook", "cleanup"})


def _cancelled(error: BaseException) -> bool:
    """Whether `error`, caught by the async driver, is its own cancellation (a shutdown).

    On asyncio, a `CancelledError` that user code raised or let out of a task it
    awaited, while nobody cancelled the driver's own task, is that code's failure.
    """
    if not isinstance(error, anyio.get_cancelled_exc_class()):
        return False
    if isinstance(error, asyncio.CancelledError):
        cancelling = getattr(asyncio.current_task(), "cancelling", None)  # Python 3.11+
        return cancelling is None or cancelling() > 0
    return True


async def drive_async(
    exchange: Exchange,
    effect: Effect,
    *,
    read_body: Callable[..., Any],
    run_sync: RunSync,
) -> Respond | Done:
    """Perform effects on the event loop until `Respond` or `Done`, and return it.

    A cancellation (shutdown) is thrown into the exchange first, so the core can
    log which tasks it interrupts and abandons, then propagates. Any other
    `BaseException` from user code is that call's failure (see "Contained" below).
    """
    while True:
        kind = type(effect)
        if kind is Call:
            call: Call = effect  # type: ignore[assignment]
            try:
                if call.purpose == "task":
                    if call.timeout is None and call.started is None:
                        # No slot to take, no deadline to watch: no extra coroutine either.
                        if call.fn is run_in_context:
                            # `run_in_context`'s work done here: a coroutine, its frame and
                            # an `await` less per task (a finished first step, the common
                            # case, leaves nothing behind to wrap).
                            context, func, args, kwargs = call.args
                            if type(func) is _Function:  # calling it runs none of its code
                                coroutine = func(*args, **kwargs)
                            else:
                                coroutine = context.run(func, *args, **kwargs)
                            try:
                                waiting = context.run(coroutine.send, None)
                            except StopIteration as stop:
                                result = stop.value
                            else:
                                # The task waits: hold on to no more than it needs meanwhile
                                # (the collector scans whatever each waiting task keeps).
                                effect = call = args = kwargs = None  # type: ignore[assignment]
                                result = await InContext(context, coroutine, waiting)
                        elif call.is_async:
                            result = await call.fn(*call.args, **call.kwargs)
                        else:
                            result = await run_sync(call)
                    else:
                        result = await _run_task_async(exchange, call, run_sync)
                elif call.is_async:
                    result = await call.fn(*call.args, **call.kwargs)
                else:
                    result = await run_sync(call)
                    if type(result) is _Coroutine:
                        result = await result
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as error:
                if not _cancelled(error):
                    effect = exchange.throw(ContainedBaseException(error))
                else:
                    exchange.throw(error)
                    raise
            else:
                effect = exchange.send(result)
        elif kind is ReadBody:
            try:
                # A reader may answer at once, with the bytes, when the body is here
                # already: no coroutine to make and resume (each resumption enters the
                # interpreter from C). Otherwise it returns something to await.
                body = read_body(effect.limit)  # type: ignore[union-attr]
                if type(body) is not bytes:
                    body = await body
            except Exception as error:
                effect = exchange.throw(error)
            else:
                effect = exchange.send(body)
        elif kind is Respond or kind is Done:  # before the rare effects, as in `drive_sync`
            return effect  # type: ignore[return-value]
        elif kind is ReadChunk or kind is OpenSpool:
            try:
                if kind is ReadChunk:
                    result = await read_body(effect.limit, effect.size)  # type: ignore[union-attr]
                else:
                    result = await run_sync(_OPEN_SPOOL)
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as interruption:
                exchange.throw(interruption)
                raise
            else:
                effect = exchange.send(result)
        elif kind is OpenBody:  # only requests left for the `Request` to read yield it
            effect = exchange.send(_perform_async(read_body, run_sync))
        elif kind is CallNext:  # only apps with HTTP middleware yield it
            try:
                result = await _call_middleware_async(effect, read_body, run_sync)  # type: ignore[arg-type]
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as error:
                if not _cancelled(error):
                    effect = exchange.throw(ContainedBaseException(error))
                else:
                    exchange.throw(error)
                    raise
            else:
                effect = exchange.send(result)
        else:
            raise TypeError(f"not an effect: {effect!r}")


# -- the rest of an exchange, begun on the spot --------------------------------------------------

_Task = asyncio.Task
_new_task = _Task.__new__
_init_task = _Task.__init__
_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
# The loop's current task: a dict lookup where asyncio keeps them in one (3.10-3.13), the
# public function otherwise.
_current_tasks: Any = getattr(asyncio.tasks, "_current_tasks", None)
_current_task: Callable[[Any], Any] = (
    _current_tasks.get if _current_tasks is not None else asyncio.current_task
)
_copy_context = contextvars.copy_context


def drive_eagerly(
    loop: asyncio.AbstractEventLoop,
    exchange: Exchange,
    effect: Effect,
    *,
    read_body: Callable[..., Awaitable[Any]],
    run_sync: RunSync,
) -> asyncio.Task[Any] | None:
    """Perform the rest of `exchange` (after its response) now, as far as it goes without waiting.

    What `start_eagerly(loop, drive_async(...))` does, without the coroutine: most
    requests' rest is one or two plain async tasks (no deadline, no running slot)
    whose first step finishes them, and those are stepped right here, in their
    contexts, with no coroutine, task or turn of the loop for the flow. Returns None
    when the exchange is over; else the asyncio task that drives the rest, already
    scheduled. Call it on `loop`'s thread, from a running task (a connection's).

    Each step runs as the first step of a task would (see `_eager.py`): a task object
    is made current for it, and if the step suspends, that very object is
    initialised to run the rest, so a cancel scope entered before the first `await`
    is left in the task that entered it. Any other effect (a sync, timed or capped
    task, a hook, a cleanup) goes to `drive_async`, started eagerly from there.
    A `BaseException` of a step is that task's failure: nothing cancels a
    synchronous step, so it cannot be the driver's own cancellation.
    """
    kind = type(effect)
    if kind is Done:
        return None
    call: Call = effect  # type: ignore[assignment]
    if (
        kind is not Call
        or not (  # a plain task: async, in its context, nothing to wait for
            call.fn is run_in_context and call.timeout is None and call.started is None
        )
        or not EAGER  # Python 3.10: no task can be given a context (see `_eager.py`)
    ):
        return start_eagerly(
            loop, drive_async(exchange, effect, read_body=read_body, run_sync=run_sync)
        )
    task = _new_task(_Task)
    caller = _current_task(loop)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, task)
    rest: Any = None
    try:
        while True:
            context, func, args, kwargs = call.args
            try:
                if type(func) is _Function:  # calling it runs none of its code
                    coroutine = func(*args, **kwargs)
                else:
                    coroutine = context.run(func, *args, **kwargs)
                waiting = context.run(coroutine.send, None)
            except StopIteration as stop:
                effect = exchange.send(stop.value)
            except Exception as error:
                effect = exchange.throw(error)
            except BaseException as error:
                effect = exchange.throw(ContainedBaseException(error))
            else:  # it waits: the task object current for the step takes over the rest
                rest = _RestOfFlow(exchange, context, coroutine, waiting, read_body, run_sync)
                break
            kind = type(effect)
            if kind is Done:
                return None
            call = effect  # type: ignore[assignment]
            if kind is not Call or not (
                call.fn is run_in_context and call.timeout is None and call.started is None
            ):
                rest = drive_async(exchange, effect, read_body=read_body, run_sync=run_sync)
                break
    finally:
        _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)
    # A coroutine's first step under `task`, then the rest (see `_eager.py`): the one
    # that waits resumes where it left off; `drive_async` starts from its beginning.
    _init_task(task, rest, loop=loop, context=_copy_context())  # type: ignore[call-arg]
    return task


class _RestOfFlow(_Resumed):
    """The rest of a flow whose task waited in its first step (see `drive_eagerly`).

    What an asyncio task drives: its first `send` gets what the waiting coroutine
    (a background task's) yielded in that step; every later step of that coroutine
    runs inside the task's own context, as `InContext` steps it. Once it ends, the
    exchange gets its outcome, and whatever the flow does next runs in
    `drive_async`, to which this object then passes every send and throw.

    One object where a coroutine awaiting an `InContext` made two, alive as long as
    the task waits (a thousand flows sleeping 1 s: what every collection scans),
    and one entry into the interpreter fewer at each step of the waiting task.
    """

    __slots__ = ("_exchange", "_context", "_read_body", "_run_sync")

    def __init__(
        self,
        exchange: Exchange,
        context: contextvars.Context,
        coroutine: Coroutine[Any, Any, Any],
        waiting: Any,
        read_body: Callable[..., Awaitable[Any]],
        run_sync: RunSync,
    ) -> None:
        super().__init__(coroutine, waiting)
        self._exchange = exchange
        #: The background task's context while its coroutine runs; None once the rest
        #: of the flow is `drive_async`'s (then `_coroutine` is that driver's).
        self._context: contextvars.Context | None = context
        self._read_body = read_body
        self._run_sync = run_sync

    def send(self, value: Any) -> Any:
        waiting = self._waiting
        if waiting is not _NOTHING:  # the task's first step: hand it the awaited future
            self._waiting = _NOTHING
            if waiting is not None:
                return waiting
            # A bare yield (`asyncio.sleep(0)`): this step already comes a turn later,
            # so the coroutine goes on now, as `_Resumed.send` does, not a turn later.
        context = self._context
        if context is None:
            return self._coroutine.send(value)
        try:
            return context.run(self._coroutine.send, value)
        except BaseException as error:
            return self._task_ended(error)

    def throw(self, *error: Any) -> Any:  # cancellation included: hand it in
        self._waiting = _NOTHING
        context = self._context
        if context is None:
            return self._coroutine.throw(*error)
        try:
            return context.run(self._coroutine.throw, *error)
        except BaseException as raised:
            return self._task_ended(raised)

    def close(self) -> None:
        # Only a task dropped unfinished is closed: the exchange then logs what it abandons.
        self._waiting = _NOTHING
        context = self._context
        if context is None:
            self._coroutine.close()
        else:
            context.run(self._coroutine.close)
        self._exchange.close()

    def _task_ended(self, ended: BaseException) -> Any:
        """Resume the exchange with how the background task ended; go on with the flow.

        `ended`: StopIteration (the task's result), its failure, or the driver's own
        cancellation (a shutdown: thrown into the exchange, which logs what it cuts
        off, then up), as `drive_async` treats a task's outcome.
        """
        exchange = self._exchange
        if type(ended) is StopIteration:
            effect = exchange.send(ended.value)
        elif isinstance(ended, Exception):
            effect = exchange.throw(ended)
        elif not _cancelled(ended):
            effect = exchange.throw(ContainedBaseException(ended))
        else:
            exchange.throw(ended)
            raise ended
        if type(effect) is Done:
            raise StopIteration
        self._context = None
        self._coroutine = rest = drive_async(
            exchange, effect, read_body=self._read_body, run_sync=self._run_sync
        )
        return rest.send(None)


# -- OpenBody: the body read later, from inside the handler ------------------------------------


def _perform_sync(read_body: Callable[..., Any]) -> Callable[[Effect], Awaitable[Any]]:
    """`perform` for the sync driver: the request's async code runs on an event loop
    (`run_coroutine`'s), so each blocking read or disk write goes to a worker thread."""

    async def perform(effect: Effect) -> Any:
        kind = type(effect)
        if kind is ReadChunk:
            return await anyio.to_thread.run_sync(read_body, effect.limit, effect.size)  # type: ignore[union-attr]
        if kind is OpenSpool:
            return await anyio.to_thread.run_sync(open_spool)
        if kind is Call and not effect.is_async:  # type: ignore[union-attr]
            return await anyio.to_thread.run_sync(call_now, effect)  # type: ignore[arg-type]
        raise RuntimeError(f"perform() cannot perform {effect!r}")

    return perform


def _perform_async(
    read_body: Callable[..., Awaitable[Any]], run_sync: RunSync
) -> Callable[[Effect], Awaitable[Any]]:
    """`perform` for the async driver: reads on the loop, disk work through `run_sync`."""

    async def perform(effect: Effect) -> Any:
        kind = type(effect)
        if kind is ReadChunk:
            return await read_body(effect.limit, effect.size)  # type: ignore[union-attr]
        if kind is OpenSpool:
            return await run_sync(_OPEN_SPOOL)
        if kind is Call and not effect.is_async:  # type: ignore[union-attr]
            return await run_sync(effect)  # type: ignore[arg-type]
        raise RuntimeError(f"perform() cannot perform {effect!r}")

    return perform


# -- HTTP middleware: `call_next` drives the inner exchange with the same loop -----------------
#
# The inner exchange is driven to its `Respond` only; the outer exchange resumes it
# once the outer response is delivered (see `core/middleware/_stack.py`).


def _call_middleware_sync(
    effect: CallNext, read_body: Callable[..., Any], run_coroutine: RunCoroutine
) -> Any:
    part = effect.next

    def call_next(request: Any) -> Any:
        inner = part.exchange(request)
        respond = drive_sync(inner, inner.start(), read_body=read_body, run_coroutine=run_coroutine)
        return part.response(respond)

    if not effect.is_async:
        return effect.fn(effect.request, call_next)

    async def call_next_async(request: Any) -> Any:
        # The middleware runs on the loop `run_coroutine` uses; the inner part runs
        # as sync code does here, off that loop (its async code goes back through it).
        return await anyio.to_thread.run_sync(call_next, request)

    return run_coroutine(effect.fn(effect.request, call_next_async))


async def _call_middleware_async(
    effect: CallNext, read_body: Callable[..., Awaitable[Any]], run_sync: RunSync
) -> Any:
    part = effect.next

    async def call_next(request: Any) -> Any:
        inner = part.exchange(request)
        respond = await drive_async(inner, inner.start(), read_body=read_body, run_sync=run_sync)
        return part.response(respond)

    if effect.is_async:
        return await effect.fn(effect.request, call_next)

    def call_next_sync(request: Any) -> Any:
        # A sync middleware runs in a worker thread: its `call_next` hops back to the loop.
        return anyio.from_thread.run(call_next, request)

    return await run_sync(
        Call(effect.fn, (effect.request, call_next_sync), {}, False, "middleware")
    )


# -- tasks: the app-wide running cap and per-task timeouts --------------------------------------
#
# `app.max_running_tasks` caps tasks running at once across the whole app: a task
# waits for a slot before it starts (the policy is "wait"; the pending limit in
# the core is where tasks are refused). The core marks the calls that must wait:
# under a cap, a task's `Call` has `started` set, so an uncapped app's tasks are
# told apart without a look at the app. Async drivers share an anyio semaphore
# per app and event loop; sync drivers a thread semaphore per app.

_async_slots: weakref.WeakKeyDictionary[Any, dict[object, anyio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)
_thread_slots: weakref.WeakKeyDictionary[Any, threading.BoundedSemaphore] = (
    weakref.WeakKeyDictionary()
)
_slots_lock = threading.Lock()


def _thread_slot(exchange: Exchange) -> threading.BoundedSemaphore | None:
    app = exchange.app
    limit = getattr(app, "max_running_tasks", None)
    if limit is None:
        return None
    with _slots_lock:
        slot = _thread_slots.get(app)
        if slot is None:
            slot = _thread_slots[app] = threading.BoundedSemaphore(limit)
    return slot


def _async_slot(exchange: Exchange) -> anyio.Semaphore | None:
    app = exchange.app
    limit = getattr(app, "max_running_tasks", None)
    if limit is None:
        return None
    token = anyio.lowlevel.current_token()
    with _slots_lock:
        per_loop = _async_slots.setdefault(app, {})
        slot = per_loop.get(token)
        if slot is None:
            slot = per_loop[token] = anyio.Semaphore(limit)
    return slot


def _run_task_sync(exchange: Exchange, call: Call, run_coroutine: RunCoroutine) -> Any:
    slot = _thread_slot(exchange)
    if slot is not None:
        slot.acquire()
    try:
        if call.started is not None:  # the task counts as running from here
            call.started()
        timeout = call.timeout
        if call.is_async:
            coroutine = call.fn(*call.args, **call.kwargs)
            if timeout is not None:
                coroutine = _within(coroutine, timeout)
            return run_coroutine(coroutine)
        if timeout is None:
            return call.fn(*call.args, **call.kwargs)
        return _call_in_thread_within(call, timeout)
    finally:
        if slot is not None:
            slot.release()


async def _run_task_async(exchange: Exchange, call: Call, run_sync: RunSync) -> Any:
    slot = _async_slot(exchange)
    if slot is not None:
        await slot.acquire()
    try:
        if call.started is not None:  # the task counts as running from here
            call.started()
        timeout = call.timeout
        if timeout is None:
            if call.is_async:
                return await call.fn(*call.args, **call.kwargs)
            return await run_sync(call)
        if call.is_async:
            return await _within(call.fn(*call.args, **call.kwargs), timeout)
        # A thread cannot be stopped: past the deadline we stop waiting for it (it
        # runs on; `run_sync` abandons task threads on cancel) and the next task starts.
        with anyio.move_on_after(timeout) as scope:
            return await run_sync(call)
        if scope.cancelled_caught:
            raise TaskTimedOut(timeout)
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        if slot is not None:
            slot.release()


async def _within(coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
    """Await `coroutine`, cancelling it after `timeout` seconds (then raise TaskTimedOut)."""
    with anyio.move_on_after(timeout) as scope:
        return await coroutine
    if scope.cancelled_caught:
        raise TaskTimedOut(timeout)
    raise AssertionError("unreachable")  # pragma: no cover


def _call_in_thread_within(call: Call, timeout: float) -> Any:
    """Run a sync call on its own thread; past `timeout`, stop waiting (it runs on)."""
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(call_now(call))
        except BaseException as error:  # handed to the waiting thread
            failure.append(error)

    thread = threading.Thread(target=target, name="velocipy-timed-task", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TaskTimedOut(timeout)
    if failure:
        raise failure[0]
    return outcome[0]


async def await_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Await `coroutine`: lets a blocking portal (which calls functions) run a coroutine object."""
    return await coroutine


def call_now(call: Call) -> Any:
    """Perform a sync `Call` right here (what worker threads run).

    A `BaseException` of user code leaves the thread already wrapped as
    `ContainedBaseException`: asyncio hands a worker's exception to the awaiting
    task by throwing it in, and a `GeneratorExit` thrown into a coroutine closes
    it instead of raising where it waits.
    """
    try:
        return call.fn(*call.args, **call.kwargs)
    except Exception:
        raise
    except BaseException as error:
        raise ContainedBaseException(error) from error


def iterate_sync(stream: StreamBody, run_coroutine: RunCoroutine) -> Iterator[bytes]:
    """A streamed body's chunks, for sync adapters; async iterators go through `run_coroutine`."""
    if not stream.is_async:
        yield from stream.iterator  # type: ignore[misc]
        return
    iterator: AsyncIterator[bytes] = stream.iterator  # type: ignore[assignment]
    while True:
        try:
            chunk = run_coroutine(iterator.__anext__())  # type: ignore[arg-type]
        except StopAsyncIteration:
            return
        yield chunk


_END: Any = object()


async def iterate_async(stream: StreamBody, run_sync: RunSync) -> AsyncIterator[bytes]:
    """A streamed body's chunks, for async adapters; sync iterators advance in `run_sync`."""
    if stream.is_async:
        async for chunk in stream.iterator:  # type: ignore[union-attr]
            yield chunk
        return
    step = Call(next, (stream.iterator, _END), {}, False, "stream")
    while True:
        chunk = await run_sync(step)
        if chunk is _END:
            return
        yield chunk
