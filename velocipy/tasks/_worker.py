"""The worker side of every queue backend: turn a batch of envelopes back into calls
and run them through the core's task flow.

An engine's one generic task (`velocipy.contrib.celery.install`,
`velocipy.contrib.dramatiq.install`) receives a batch as JSON and hands it to
`run_next`, which runs its first task and then hands the rest to the engine as
the next message, under the next task's id: so each task is an engine message
of its own (its id is the handle's id and the engine's), while one request's
tasks still run in order, and a failure stops none of the rest. A forward that
fails is retried with backoff, then `ForwardFailed` tells the engine to deliver the
current message again (its task reruns: at least once). `run_batch`
runs a whole batch here, in order. Each envelope's function is imported by name (the worker imports
the task's module, never the web app), its arguments are rebuilt from the
function's annotations, its context variables restored; then `run_tasks` from
the core is driven by the sync driver, so order, failure isolation, timeouts,
logging and hooks are the very code that runs tasks in process. Async tasks run
on an event loop started for them (anyio), which Celery cannot do by itself.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any

import anyio

from velocipy.adapters._drive import await_coroutine, drive_sync
from velocipy.core import Exchange, RequestHead, Task
from velocipy.core._envelopes import (
    CARRIED_CONTEXT,
    Envelope,
    current_task_id,
    rebuild_arguments,
    restored_context,
)
from velocipy.core._tasks import is_async_callable, run_tasks

logger = logging.getLogger("velocipy")

Hooks = Sequence[tuple[Callable[..., Any], bool]]


def import_task(path: str) -> Callable[..., Any]:
    """The function named `"module:qualname"`, imported."""
    module_name, _, qualname = path.partition(":")
    if not module_name or not qualname:
        raise ValueError(f"task path {path!r} is not 'module:qualname'")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{path} is not callable")
    return target  # type: ignore[no-any-return]


def error_hooks(hooks: Iterable[Callable[..., Any]]) -> list[tuple[Callable[..., Any], bool]]:
    """`hook(task, exception)` callables as the core's task flow takes them."""
    return [(hook, is_async_callable(hook)) for hook in hooks]


def task_from_envelope(
    data: Mapping[str, Any],
    variables: Sequence[contextvars.ContextVar[Any]],
    base: contextvars.Context | None = None,
) -> Task:
    """A task handle for one envelope. One that cannot be imported or rebuilt becomes
    a task that raises why, so it is logged by name like any failure, and the rest run.

    Its context holds the carried `variables`, on a copy of `base` when given (the
    engine's own context: Dramatiq's current message, say), else on a fresh one."""
    envelope = Envelope.from_dict(data)
    try:
        func = import_task(envelope.task)
        args, kwargs = rebuild_arguments(func, envelope.args, envelope.kwargs)
    except Exception as error:
        func, args, kwargs = _fails_with(error, envelope.task), (), {}
    if base is None:
        context = restored_context(envelope.context, variables)
    else:
        context = base.copy()
        for variable in variables:
            if variable.name in envelope.context:
                context.run(variable.set, envelope.context[variable.name])
    context.run(current_task_id.set, envelope.id)
    task = Task(func, args, kwargs, name=envelope.name, context=context)
    task.id = envelope.id  # logs on the worker carry the id the web process handed out
    task.timeout = envelope.timeout
    task.route = envelope.route
    task.method = envelope.method
    return task


def _fails_with(error: Exception, path: str) -> Callable[[], None]:
    def cannot_run() -> None:
        raise RuntimeError(f"cannot import or rebuild the arguments of {path}") from error

    return cannot_run


def run_batch(
    batch: Sequence[Mapping[str, Any]],
    *,
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    hooks: Hooks = (),
    engine_context: bool = False,
) -> list[Task]:
    """Run one published batch here, in order; return the finished handles.

    With `engine_context`, tasks also see the context the engine runs them in (a
    worker's); without, only what the envelopes carried (the TestClient's strict run).
    """
    variables = (*CARRIED_CONTEXT, *context_vars)
    base = contextvars.copy_context() if engine_context else None
    tasks = [task_from_envelope(data, variables, base) for data in batch]
    if not tasks:
        return tasks
    route = tasks[0].route
    exchange = Exchange(RequestHead("TASK", route or "/"), run_tasks(tasks, route, hooks))
    drive_sync(exchange, exchange.start(), read_body=_no_body, run_coroutine=_run_coroutine)
    return tasks


class ForwardFailed(Exception):
    """A worker could not publish the rest of a batch within its attempts.

    Raised by `run_next` to the engine's generic task, which then has the engine
    deliver the *current* message again (Celery: rejected and requeued; Dramatiq:
    enqueued again by the generic actor, which waits until the broker takes it): its
    task runs again, then forwards the rest, so no later task of the request is lost
    (at least once).
    """

    def __init__(self, rest: Sequence[Mapping[str, Any]], attempts: int) -> None:
        self.rest = rest
        self.attempts = attempts
        super().__init__(
            f"could not publish the rest of a task batch in {attempts} attempt(s): "
            + describe(rest)
        )


def describe(batch: Sequence[Mapping[str, Any]]) -> str:
    """The tasks of a batch by name and id, for the logs."""
    return ", ".join(f"{data.get('task')} [{data.get('id')}]" for data in batch)


def run_next(
    batch: Sequence[Mapping[str, Any]],
    *,
    forward: Callable[[Sequence[Mapping[str, Any]]], None],
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    hooks: Hooks = (),
    engine_context: bool = False,
    forward_attempts: int = 1,
    forward_backoff: float = 0.5,
    forward_max_backoff: float = 10.0,
) -> Task:
    """Run the first task of `batch` here, then `forward(rest)` whatever its outcome.

    `forward` publishes the rest of the batch as one engine message whose id is
    `rest[0]["id"]` (the next task's handle id): the continuation. It is called
    after the task ended, before the engine acknowledges this message, so a
    worker killed in between runs this task again and forwards then (at least
    once, for every task).

    A failed forward is tried again, up to `forward_attempts` times in all,
    pausing `forward_backoff` seconds, doubled after each failure up to
    `forward_max_backoff`; each failure is logged. When the last one fails,
    `ForwardFailed` is raised (from the last error) for the engine to deliver
    this message again. After a `BaseException` from the task itself (a worker
    shutting down), the forward is tried once, not retried.
    """
    completed = False
    try:
        [task] = run_batch(
            batch[:1], context_vars=context_vars, hooks=hooks, engine_context=engine_context
        )
        completed = True
    finally:
        # Also after a BaseException (a worker's shutdown): the rest is not this task's.
        rest = batch[1:]
        if rest:
            attempts = max(1, forward_attempts) if completed else 1
            _forward(rest, forward, attempts, forward_backoff, forward_max_backoff)
    return task


def batch_runner(
    forward: Callable[[Sequence[Mapping[str, Any]]], None],
    *,
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    on_task_error: Iterable[Callable[..., Any]] = (),
    forward_attempts: int = 1,
    forward_backoff: float = 0.5,
    forward_max_backoff: float = 10.0,
) -> Callable[[Sequence[Mapping[str, Any]]], Task]:
    """What an engine's generic task calls with each message's batch: `run_next` with
    the settings its `install` was given, in the engine's context. It returns the
    task it ran, or raises `ForwardFailed` for the engine to deliver the message again.
    """
    return functools.partial(
        run_next,
        forward=forward,
        context_vars=tuple(context_vars),
        hooks=error_hooks(on_task_error),
        engine_context=True,
        forward_attempts=forward_attempts,
        forward_backoff=forward_backoff,
        forward_max_backoff=forward_max_backoff,
    )


def _forward(
    rest: Sequence[Mapping[str, Any]],
    forward: Callable[[Sequence[Mapping[str, Any]]], None],
    attempts: int,
    backoff: float,
    max_backoff: float,
) -> None:
    pause = backoff
    for attempt in range(1, attempts + 1):
        try:
            forward(rest)
        except Exception as error:
            if attempt < attempts:
                logger.warning(
                    "publishing the rest of a task batch failed (attempt %d of %d: %r); "
                    "trying again in %.2g s: %s",
                    attempt,
                    attempts,
                    error,
                    pause,
                    describe(rest),
                )
                time.sleep(pause)
                pause = min(pause * 2, max_backoff)
                continue
            logger.error(
                "could not publish the rest of a task batch (%d attempt(s), last: %r): %s",
                attempts,
                error,
                describe(rest),
            )
            raise ForwardFailed(rest, attempts) from error
        except BaseException:
            logger.exception("could not publish the rest of a task batch: %s", describe(rest))
            raise
        else:
            if attempt > 1:
                logger.warning(
                    "published the rest of a task batch at attempt %d: %s", attempt, describe(rest)
                )
            return


def _run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Await an async task on an event loop of its own (the worker has none)."""
    return anyio.run(await_coroutine, coroutine)


def _no_body(limit: int) -> bytes:  # pragma: no cover - the task flow reads no body
    raise RuntimeError("a task batch has no request body")
