"""The worker side of every queue backend: turn a batch of envelopes back into calls
and run them through the core's task flow.

An engine's one generic task (`velocipy.contrib.celery.install`,
`velocipy.contrib.dramatiq.install`) receives a batch as JSON and hands it to
`run_next`, which runs its first task and then hands the rest to the engine as
the next message, under the next task's id: so each task is an engine message
of its own (its id is the handle's id and the engine's), while one request's
tasks still run in order, and a failure stops none of the rest. `run_batch`
runs a whole batch here, in order. Each envelope's function is imported by name (the worker imports
the task's module, never the web app), its arguments are rebuilt from the
function's annotations, its context variables restored; then `run_tasks` from
the core is driven by the sync driver, so order, failure isolation, timeouts,
logging and hooks are the very code that runs tasks in process. Async tasks run
on an event loop started for them (anyio), which Celery cannot do by itself.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
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


def run_next(
    batch: Sequence[Mapping[str, Any]],
    *,
    forward: Callable[[Sequence[Mapping[str, Any]]], None],
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    hooks: Hooks = (),
    engine_context: bool = False,
) -> Task:
    """Run the first task of `batch` here, then `forward(rest)` whatever its outcome.

    `forward` publishes the rest of the batch as one engine message whose id is
    `rest[0]["id"]` (the next task's handle id): the continuation. It is called
    after the task ended, before the engine acknowledges this message, so a
    worker killed in between runs this task again and forwards then (at least
    once, for every task). A failed forward is logged, naming every task it
    leaves unpublished, and raised to the engine.
    """
    try:
        [task] = run_batch(
            batch[:1], context_vars=context_vars, hooks=hooks, engine_context=engine_context
        )
    finally:
        # Also after a BaseException (a worker's shutdown): the rest is not this task's.
        rest = batch[1:]
        if rest:
            try:
                forward(rest)
            except BaseException:
                names = ", ".join(f"{data.get('task')} [{data.get('id')}]" for data in rest)
                logger.exception("could not publish the rest of a task batch: %s", names)
                raise
    return task


def _run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Await an async task on an event loop of its own (the worker has none)."""
    return anyio.run(await_coroutine, coroutine)


def _no_body(limit: int) -> bytes:  # pragma: no cover - the task flow reads no body
    raise RuntimeError("a task batch has no request body")
