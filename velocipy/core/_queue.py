"""Queued tasks: the handles and the flow steps used when the app's tasks go to a queue.

With a queue backend (`VelociPy(task_backend=CeleryBackend(...))`) a handler's
`BackgroundTasks` is a `QueuedTasks`: `add_task` has the same signature and
returns a `QueuedTask`, after checking, there and then, that the task can
travel (importable by name, JSON arguments, options the backend can honour):
a task that cannot is an error raised by `add_task` itself, in the handler,
naming the route and the task. `background_tasks.inline.add_task` keeps work
that cannot travel in this process.

After the handler, the exchange (`_exchange.py`) calls the steps below:
`queued_part` picks the tasks that go to the queue, `publish_flow` hands the
request's batch to the backend as one `Call` effect bounded by the backend's
deadline, and applies the configured policy if it fails. A backend that
`detaches` (nothing waits for the broker) is handed the batch by `detach_batch`,
a plain call in the flow, when an event loop runs it: no effect at all. Order, logging and
hooks of tasks that do run here stay in `run_tasks` (`_tasks.py`), written once.
"""

from __future__ import annotations

import contextvars
import logging
import types
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from ._backends import TaskBackend
from ._envelopes import (
    Envelope,
    TaskNotPortable,
    carried_context,
    new_envelope_id,
    task_path,
    to_json,
)
from ._errors import TaskTimedOut
from ._events import Call
from ._tasks import (
    BackgroundTasks,
    Task,
    TaskState,
    _call_hooks,
    _copy_context,
    _fill,
    _new_task,
    callable_name,
)

if TYPE_CHECKING:
    from ._registry import TaskRegistry

logger = logging.getLogger("velocipy")

_PENDING = TaskState.PENDING
_PUBLISHED = TaskState.PUBLISHED


def _took_slot() -> None:
    """A publish counts no task as running: it only waits for a slot like one."""


class QueuedTask(Task):
    """A task handle whose work a queue backend publishes (unless kept `inline`).

    Its `id` is the id of its envelope and of the engine's message (`queue_id` is
    the same value): use it to make a task idempotent, since a durable queue
    delivers at least once. Built only for a task that can travel: `QueuedTasks`
    checks that first, in the handler.
    """

    __slots__ = (
        "queue_id",
        "path",
        "payload",
        "carried",
        "inline",
        "queue",
        "priority",
        "delay",
        "_backend",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        backend: TaskBackend,
        name: str,
        path: str,
        payload: tuple[list[Any], dict[str, Any]],
        carried: dict[str, Any],
        registry: TaskRegistry | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        super().__init__(func, args, kwargs, None, name, registry=registry, context=context)
        self.id = self.queue_id = new_envelope_id()
        self._backend = backend
        self.inline = False
        self.queue: str | None = None
        self.priority: int | None = None
        self.delay: float | None = None
        self.path = path
        self.payload = payload
        self.carried = carried

    def _set_queue_options(
        self, backend: str | None, queue: str | None, priority: int | None, delay: float | None
    ) -> None:
        if backend is not None:
            if backend != "inline":
                raise ValueError(f"backend must be 'inline', got {backend!r}")
            self.inline = True
        if queue is not None:
            if not isinstance(queue, str) or not queue:
                raise ValueError(f"queue must be a non-empty string, got {queue!r}")
            self.queue = queue
        if priority is not None:
            if type(priority) is not int:
                raise ValueError(f"priority must be an int, got {priority!r}")
            self.priority = priority
        if delay is not None:
            if not delay >= 0:
                raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
            self.delay = float(delay)
        if not self.inline:
            self._backend.validate_task(self)

    def envelope(self) -> Envelope:
        """This task as the data a worker receives."""
        # Built field by field: calling the dataclass with its twelve keywords cost
        # ~2,500 instructions more, once per queued task.
        envelope = _new_envelope(Envelope)
        envelope.id = self.queue_id
        envelope.task = self.path
        envelope.name = self._name or self.name  # set at `add_task`: no property call
        envelope.args, envelope.kwargs = self.payload
        envelope.route = self.route
        envelope.method = self.method
        envelope.timeout = self.timeout
        envelope.queue = self.queue or self._backend.queue
        envelope.priority = self.priority
        envelope.delay = self.delay
        envelope.context = self.carried
        return envelope

    def _published(self) -> None:
        """Move to published (`_move(PUBLISHED)`, specialised: it runs for every queued
        task): from pending, unless a shutdown has marked it abandoned meanwhile."""
        previous = self.state
        self.state = _PUBLISHED
        registry = self._registry
        if registry is not None:
            self.finished_at = registry.now()
            if registry._lock is None and previous is _PENDING:
                registry.pending -= 1
                registry.published += 1
            else:
                self._recount(registry, previous, _PUBLISHED)


#: Module-level functions already found portable: their import path and name. Looked up
#: per `add_task`, which otherwise walks the module's attributes and builds the name
#: again for every request. Bounded, in case an app makes functions on the fly.
_PORTABLE: dict[Callable[..., Any], tuple[str, str]] = {}
_PORTABLE_MAX = 4096


def _path_and_name(func: Callable[..., Any]) -> tuple[str, str]:
    if type(func) is types.FunctionType:
        known = _PORTABLE.get(func)
        if known is not None:
            return known
        found = (task_path(func), callable_name(func))
        if len(_PORTABLE) < _PORTABLE_MAX:
            _PORTABLE[func] = found
        return found
    return task_path(func), callable_name(func)


#: Bare instances, their fields set by the caller (`QueuedTask.envelope`, `publish_flow`).
_new_envelope = _new_settlement = _new_call = object.__new__

#: Argument types that are JSON as they are: most calls pass only these, and skip
#: `to_json`'s walk (and the error paths it formats as it goes).
_PLAIN = frozenset({str, int, float, bool, type(None)})


class QueuedTasks(BackgroundTasks):
    """`BackgroundTasks` for an app whose task backend is a queue."""

    __slots__ = ("_backend", "_route")

    def __init__(self, registry: TaskRegistry | None, backend: TaskBackend, route: str) -> None:
        super().__init__(registry)
        self._backend = backend
        self._route = route

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Schedule `func(*args, **kwargs)`: published to the queue after the response.

        Raises `TaskNotPortable` here, in the handler, naming the route and the
        task, if a worker could not import `func` by name or an argument is not
        JSON; and `ValueError` for what the backend cannot run. Work that cannot
        travel can still run in this process: `background_tasks.inline.add_task`.
        """
        if not callable(func):
            raise TypeError(f"add_task() needs a callable, got {func!r}")
        backend = self._backend
        try:
            # `_path_and_name`'s cache, looked up inline (plain functions only: hashable).
            known = _PORTABLE.get(func) if type(func) is types.FunctionType else None
            path, name = known if known is not None else _path_and_name(func)
            # Loops rather than all(): no generator to create per call.
            positional: list[Any] = list(args)
            for value in args:
                if type(value) not in _PLAIN:
                    positional = to_json(positional, "argument")
                    break
            named: dict[str, Any] = kwargs
            for value in kwargs.values():
                if type(value) not in _PLAIN:
                    named = to_json(kwargs, "keyword argument")
                    break
            # `carried_context`, inlined for the common case: no variable set, or strings.
            carried: dict[str, Any] = {}
            for variable in backend.context_vars:
                value = variable.get(None)
                if value is not None:
                    if type(value) is not str:
                        carried = carried_context(backend.context_vars)
                        break
                    carried[variable.name] = value
        except TaskNotPortable as problem:
            raise TaskNotPortable(
                f"{self._route}: background task {callable_name(func)} cannot go to "
                f"{type(backend).__name__}: {problem}. Keep it in this process with "
                "background_tasks.inline.add_task(...)"
            ) from None
        # `QueuedTask(...)`'s work, without calling the class: `type.__call__`, the
        # keyword arguments and `super().__init__` cost ~5,000 instructions more a task.
        task: QueuedTask = _fill(  # type: ignore[assignment]
            _new_task(QueuedTask), func, args, kwargs, None, name, self._registry, _copy_context()
        )
        task.id = task.queue_id = new_envelope_id()
        task._backend = backend
        task.inline = False
        task.queue = task.priority = task.delay = None
        task.path = path
        task.payload = (positional, named)
        task.carried = carried
        if backend.checks_new_tasks:
            try:
                backend.validate_task(task)
            except ValueError:
                task._move(TaskState.SKIPPED)  # never runs: take it out of the pending count
                raise
        self._tasks.append(task)
        return task

    @property
    def inline(self) -> BackgroundTasks:
        """Add tasks that run in this process, after the response (before the cleanup and
        the publish), whatever they are: the queue's rules do not apply to them."""
        return _InlineTasks(self)


def new_queued_tasks(
    registry: TaskRegistry | None, backend: TaskBackend, route: str
) -> QueuedTasks:
    """`QueuedTasks(registry, backend, route)`, built bare: calling the class (its
    `__init__` and `super().__init__`) cost ~2,500 instructions more, per request."""
    tasks: QueuedTasks = _new_task(QueuedTasks)
    tasks._tasks = []
    tasks._registry = registry
    tasks._backend = backend
    tasks._route = route
    return tasks


class _InlineTasks(BackgroundTasks):
    """The in-process view of a `QueuedTasks`: plain tasks, appended to the same list so
    that the request's order is kept."""

    __slots__ = ()

    def __init__(self, queued: QueuedTasks) -> None:
        super().__init__(queued._registry)
        self._tasks = queued._tasks


def queued_part(tasks: Sequence[Task]) -> list[QueuedTask]:
    """The pending tasks of `tasks` that go to the queue, in order."""
    return [
        task
        for task in tasks
        if isinstance(task, QueuedTask) and not task.inline and task.state is _PENDING
    ]


def publish_flow(
    backend: TaskBackend,
    tasks: Sequence[QueuedTask],
    route: str,
    hooks: Sequence[tuple[Callable[..., Any], bool]],
) -> Generator[Call, Any, bool]:
    """Publish `tasks` as one batch, within the backend's deadline; True if it took them.

    On failure the batch is logged; unless the policy is `"inline"` (the caller
    then runs the tasks here), each task is marked failed and passed to `hooks`.

    A backend that `detaches` (after the response, failures only logged and hooked)
    takes the batch with a `Settlement` and answers True at once: nothing waits
    on the broker, and the backend settles the tasks when the engine has answered.
    """
    # One task, the common case: no comprehension (a function call of its own).
    envelopes = [tasks[0].envelope()] if len(tasks) == 1 else [task.envelope() for task in tasks]
    registry = tasks[0]._registry if tasks else None
    if backend.detaches and _room_to_detach(registry):
        settlement = _settlement(backend, tasks, route, hooks)
        # Built field by field: calling the class costs ~1,200 instructions more.
        call = _new_call(Call)
        call.fn = backend.apublish_detached
        call.args = (envelopes, settlement)
        call.kwargs = {}
        call.is_async = True
        call.purpose = "publish"
        call.timeout = None
        call.started = None
    elif backend.bounds_deadline:
        # The backend ends its own wait: no driver timer, and (async) no worker thread.
        if backend.supports_async_publish:
            call = Call(backend.apublish, (envelopes,), {}, True, "publish")
        else:
            call = Call(backend.publish, (envelopes,), {}, False, "publish")
    else:
        if backend.supports_async_publish:
            call = Call(backend.apublish, (envelopes,), {}, True, "task", backend.deadline)
        else:
            call = Call(backend.publish, (envelopes,), {}, False, "task", backend.deadline)
        if registry is not None and registry.running_cap is not None:
            call.started = _took_slot  # under the app's running cap, it waits for a slot too
    try:
        detached = yield call
    except Exception as failure:
        yield from unpublished_flow(backend, tasks, route, hooks, failure)
        return False
    if detached is not True:
        for task in tasks:
            task._published()
    return True


def detach_batch(
    backend: TaskBackend,
    tasks: Sequence[QueuedTask],
    route: str,
    hooks: Sequence[tuple[Callable[..., Any], bool]],
) -> bool:
    """Hand `tasks` to a backend that `detaches` with a plain call, no effect: True if it
    took them (it settles them later, on the event loop running this flow).

    False if it did not: no event loop runs in this thread (the sync driver, trio), or
    the tasks in flight are past half the app's bound (see `_room_to_detach`); then
    `publish_flow` publishes them. A detached batch asks nothing of the drivers: yielded
    as a `Call`, it cost an effect, a coroutine, and a resumption of every generator
    between the driver and `publish_flow`, per request, to queue a batch the backend
    takes at once anyway. Raises what the backend's `detach` raised (not taken).
    """
    if not _room_to_detach(tasks[0]._registry):
        return False
    envelopes = [tasks[0].envelope()] if len(tasks) == 1 else [task.envelope() for task in tasks]
    return backend.detach(envelopes, _settlement(backend, tasks, route, hooks))


def unpublished_flow(
    backend: TaskBackend,
    tasks: Sequence[QueuedTask],
    route: str,
    hooks: Sequence[tuple[Callable[..., Any], bool]],
    failure: BaseException,
) -> Generator[Call, Any, None]:
    """A batch the backend did not take: logged; unless the policy is `"inline"` (the
    caller then runs the tasks here), each task failed and passed to `hooks`."""
    if backend.on_failure == "inline":
        _log_failure(backend, tasks, route, failure, "running them in this process instead")
        return
    yield from failed_flow(backend, tasks, route, hooks, failure)


def _room_to_detach(registry: TaskRegistry | None) -> bool:
    """Whether the tasks in flight are under half the app's bound, if it has one.

    A detached batch leaves flight when the publishing thread's answer reaches the
    loop, and no request's end is there to let the requests held at the bound in
    (the servers look for room when a request's work ends). Past half the bound the
    requests wait for their publish again, as before detaching: theirs is the end
    that lets the held ones in, as soon as the broker has answered.
    """
    if registry is None or registry.max_in_flight is None:
        return True
    return (registry.pending + registry.running) * 2 < registry.max_in_flight


def _settlement(
    backend: TaskBackend,
    tasks: Sequence[QueuedTask],
    route: str,
    hooks: Sequence[tuple[Callable[..., Any], bool]],
) -> Settlement:
    """`Settlement(backend, tasks, route, hooks)`, built field by field: calling the
    class costs ~1,200 instructions more."""
    settlement: Settlement = _new_settlement(Settlement)
    settlement.backend = backend
    settlement.tasks = tasks
    settlement.route = route
    settlement.hooks = hooks
    return settlement


def failed_flow(
    backend: TaskBackend,
    tasks: Sequence[QueuedTask],
    route: str,
    hooks: Sequence[tuple[Callable[..., Any], bool]],
    failure: BaseException,
) -> Generator[Call, Any, None]:
    """A batch that was not published: logged, each task failed and passed to `hooks`."""
    _log_failure(backend, tasks, route, failure, "they will not run")
    for task in tasks:
        task.error = failure
        task._move(TaskState.FAILED)
    for task in tasks:
        yield from _call_hooks(hooks, task, failure, route)


def _log_failure(
    backend: TaskBackend,
    tasks: Sequence[QueuedTask],
    route: str,
    failure: BaseException,
    outcome: str,
) -> None:
    names = ", ".join(task.name for task in tasks)
    timed_out = isinstance(failure, TaskTimedOut)
    reason = f"no answer within {backend.deadline}s" if timed_out else repr(failure)
    logger.error(
        "Publishing background tasks (%s) for %s to %s failed (%s); %s",
        names,
        route,
        type(backend).__name__,
        reason,
        outcome,
        exc_info=None if timed_out else failure,
    )


class Settlement:
    """What becomes of a batch published without waiting, once the engine has answered.

    The backend calls `published()` when the batch is in the broker, or drives
    `failed(error)` (its `Call`s are the app's `on_task_error` hooks) when it is
    not, on the event loop the request ran on: the tasks stay pending, and count
    as in flight, until then.
    """

    __slots__ = ("backend", "tasks", "route", "hooks")

    def __init__(
        self,
        backend: TaskBackend,
        tasks: Sequence[QueuedTask],
        route: str,
        hooks: Sequence[tuple[Callable[..., Any], bool]],
    ) -> None:
        self.backend = backend
        self.tasks = tasks
        self.route = route
        self.hooks = hooks

    def published(self) -> None:
        """The batch is in the broker: each task moves to published."""
        # `task._published()`'s body, inlined: this runs per request, on the loop.
        for task in self.tasks:
            previous = task.state
            task.state = _PUBLISHED
            registry = task._registry
            if registry is not None:
                task.finished_at = registry.now()
                if registry._lock is None and previous is _PENDING:
                    registry.pending -= 1
                    registry.published += 1
                else:
                    task._recount(registry, previous, _PUBLISHED)

    def failed(self, error: BaseException) -> Generator[Call, Any, None]:
        return failed_flow(self.backend, self.tasks, self.route, self.hooks, error)
