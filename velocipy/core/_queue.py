"""Queued tasks: the handles and the flow steps used when the app's tasks go to a queue.

With a queue backend (`VelociPy(task_backend=CeleryBackend(...))`) a handler's
`BackgroundTasks` is a `QueuedTasks`: `add_task` has the same signature and
returns a `QueuedTask`, which also checks, there and then, that the task can
travel (importable by name, JSON arguments). What it finds is raised when the
handler returns, naming the route and the task, unless the task was kept in
process with `.with_options(backend="inline")`.

After that, the exchange (`_exchange.py`) calls the steps below: `check_queued`
while the handler's errors still become its response, `publish_flow` to hand
the request's batch to the backend as one `Call` effect with the backend's
deadline, and `publish_failed` for the configured policy. Order, logging and
hooks of tasks that do run here stay in `run_tasks` (`_tasks.py`), written once.
"""

from __future__ import annotations

import contextvars
import logging
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
from ._tasks import BackgroundTasks, Task, TaskState, _call_hooks, log_abandoned

if TYPE_CHECKING:
    from ._registry import TaskRegistry

logger = logging.getLogger("velocipy")

_PENDING = TaskState.PENDING


class QueuedTask(Task):
    """A task handle whose work a queue backend publishes (unless kept `inline`).

    `queue_id` is the id of its envelope and of the engine's message: use it to
    make a task idempotent, since a durable queue delivers at least once.
    """

    __slots__ = (
        "queue_id",
        "path",
        "payload",
        "carried",
        "problem",
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
        registry: TaskRegistry | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        super().__init__(func, args, kwargs, registry=registry, context=context)
        self.queue_id = new_envelope_id()
        self._backend = backend
        self.inline = False
        self.queue: str | None = None
        self.priority: int | None = None
        self.delay: float | None = None
        self.path = ""
        self.payload: tuple[list[Any], dict[str, Any]] = ([], {})
        self.carried: dict[str, Any] = {}
        #: Why this task cannot travel, found at `add_task`; raised when the handler returns.
        self.problem: TaskNotPortable | None = None
        try:
            self.path = task_path(func)
            self.payload = (to_json(list(args), "argument"), to_json(kwargs, "keyword argument"))
            self.carried = carried_context(backend.context_vars)
        except TaskNotPortable as problem:
            self.problem = problem

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
        args, kwargs = self.payload
        return Envelope(
            id=self.queue_id,
            task=self.path,
            name=self.name,
            args=args,
            kwargs=kwargs,
            route=self.route,
            method=self.method,
            timeout=self.timeout,
            queue=self.queue or self._backend.queue,
            priority=self.priority,
            delay=self.delay,
            context=self.carried,
        )


class QueuedTasks(BackgroundTasks):
    """`BackgroundTasks` for an app whose task backend is a queue."""

    __slots__ = ("_backend",)

    def __init__(self, registry: TaskRegistry | None, backend: TaskBackend) -> None:
        super().__init__(registry)
        self._backend = backend

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Schedule `func(*args, **kwargs)`: published to the queue after the response.

        Checks here that `func` is importable by name and the arguments are JSON;
        a problem is raised when the handler returns (not after the response),
        unless the task is kept in process with `.with_options(backend="inline")`.
        """
        if not callable(func):
            raise TypeError(f"add_task() needs a callable, got {func!r}")
        task = QueuedTask(
            func,
            args,
            kwargs,
            backend=self._backend,
            registry=self._registry,
            context=contextvars.copy_context(),
        )
        self._tasks.append(task)
        return task


def check_queued(tasks: Sequence[Task], backend: TaskBackend) -> None:
    """Raise, in the handler's stead, for the first task that cannot be published."""
    for task in tasks:
        if not isinstance(task, QueuedTask) or task.inline:
            continue
        if task.problem is not None:
            raise TaskNotPortable(
                f"{task.route}: background task {task.name} cannot go to "
                f"{type(backend).__name__}: {task.problem}. Keep it in this process with "
                ".with_options(backend='inline')"
            ) from task.problem
        backend.validate_task(task)


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
    """
    movable = [task for task in tasks if task.problem is None]
    if len(movable) != len(tasks):  # only run_on="error" tasks get here with a problem
        for task in tasks:
            if task.problem is not None:
                log_abandoned([task], route, str(task.problem), level=logging.ERROR)
    if not movable:
        return True
    envelopes = [task.envelope() for task in movable]
    if backend.supports_async_publish:
        call = Call(backend.apublish, (envelopes,), {}, True, "task", backend.deadline)
    else:
        call = Call(backend.publish, (envelopes,), {}, False, "task", backend.deadline)
    try:
        yield call
    except Exception as failure:
        names = ", ".join(task.name for task in movable)
        timed_out = isinstance(failure, TaskTimedOut)
        reason = f"no answer within {backend.deadline}s" if timed_out else repr(failure)
        if backend.on_failure == "inline":
            logger.error(
                "Publishing background tasks (%s) for %s to %s failed (%s); "
                "running them in this process instead",
                names,
                route,
                type(backend).__name__,
                reason,
                exc_info=None if timed_out else failure,
            )
            return False
        logger.error(
            "Publishing background tasks (%s) for %s to %s failed (%s); they will not run",
            names,
            route,
            type(backend).__name__,
            reason,
            exc_info=None if timed_out else failure,
        )
        for task in movable:
            task.error = failure
            task._move(TaskState.FAILED)
        for task in movable:
            yield from _call_hooks(hooks, task, failure, route)
        return False
    for task in movable:
        task._move(TaskState.PUBLISHED)
    return True
