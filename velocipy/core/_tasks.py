"""Background tasks: the container handlers fill, the task handles, and the one place
their semantics live.

A handler declares a `BackgroundTasks` parameter and calls `add_task`, which
returns a `Task`: a handle whose `state` moves `pending → running →
succeeded | failed | timed_out | cancelled`, or from `pending` to `abandoned`
(never run: the response was not delivered, the server stopped, the queue was
full) or `skipped` (its `run_on` rule did not match how the handler ended).

The exchange holds the tasks until the adapter reports the response sent, then
`run_tasks` yields one `Call` per task, in the order added. A failure is logged
on the `velocipy` logger with the task's name, route and traceback, passed to
the app's task-error hooks, and the next task follows. If the flow itself is
interrupted (the adapter is cancelled at shutdown), the interrupted task is
logged as cancelled and every task not yet started as abandoned, by name,
before the interruption propagates: nothing is lost silently.

Each task runs in a copy of the `contextvars` context taken when it was added,
so request ids and tracing context reach it, whether it is sync or async.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import inspect
import itertools
import logging
import types
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ContainedBaseException, TaskTimedOut
from ._events import Call

if TYPE_CHECKING:
    from ._registry import TaskRegistry

logger = logging.getLogger("velocipy")

_ids = itertools.count(1)
_copy_context = contextvars.copy_context
#: A bare instance, its fields set by the caller: `_fill` for a task, `Task._start` for a Call.
_new_task = _new_call = object.__new__
_CO_COROUTINE = inspect.CO_COROUTINE


def unwrap(error: Exception) -> BaseException:
    """The exception user code really raised: `error`, or the one it contains."""
    return error.error if type(error) is ContainedBaseException else error


def is_async_callable(func: Callable[..., Any]) -> bool:
    """Whether calling `func` returns a coroutine: async functions, partials of them, and
    objects whose class defines `async def __call__`."""
    # Plain functions and bound methods answer from their code flags directly:
    # `inspect.iscoroutinefunction` costs microseconds, and this runs per add_task.
    kind = type(func)
    if kind is types.FunctionType:
        return bool(func.__code__.co_flags & inspect.CO_COROUTINE)
    if kind is types.MethodType and type(func.__func__) is types.FunctionType:  # type: ignore[attr-defined]
        return bool(func.__func__.__code__.co_flags & inspect.CO_COROUTINE)  # type: ignore[attr-defined]
    if kind is types.BuiltinFunctionType or kind is types.BuiltinMethodType:
        return False
    if inspect.iscoroutinefunction(func):
        return True
    return inspect.iscoroutinefunction(kind.__dict__.get("__call__"))


def callable_name(func: Callable[..., Any]) -> str:
    """A readable name for logs: the qualified name, or the repr for anonymous callables."""
    if isinstance(func, functools.partial):
        return callable_name(func.func)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    if isinstance(name, str):
        module = getattr(func, "__module__", None)
        return f"{module}.{name}" if isinstance(module, str) and module != "builtins" else name
    return repr(func)


class TaskState(str, enum.Enum):
    """Where a task stands. The last seven are final.

    A `str` enum: members compare equal to their values (`"succeeded"`), and
    hash as strings, which keeps the per-task bookkeeping cheap.
    """

    #: Scheduled, not started.
    PENDING = "pending"
    #: Being run now.
    RUNNING = "running"
    #: Returned normally.
    SUCCEEDED = "succeeded"
    #: Raised an exception (logged, passed to the task-error hooks).
    FAILED = "failed"
    #: Ran past its `timeout` (an async task was cancelled; a sync one was left to finish).
    TIMED_OUT = "timed_out"
    #: Interrupted while running, by a server shutdown.
    CANCELLED = "cancelled"
    #: Never run though it should have: undelivered response, shutdown, full queue.
    ABANDONED = "abandoned"
    #: Never run by rule: its `run_on` did not match how the handler ended.
    SKIPPED = "skipped"
    #: Handed to a queue backend; a worker runs it (and reports there, not here).
    PUBLISHED = "published"


FINAL_STATES = frozenset(TaskState) - {TaskState.PENDING, TaskState.RUNNING}
# Module constants: `TaskState.PENDING` is an attribute lookup on an Enum class, whose
# metaclass __getattr__ makes it about 5x a plain attribute, on every use.
_PENDING, _RUNNING, _SUCCEEDED = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED
_SKIPPED = TaskState.SKIPPED

_STILL_RUNNING = " (a sync task cannot be stopped; it may still be running)"

#: When a task runs, depending on how the handler ended.
RUN_ON = frozenset({"success", "error", "always"})


class Task:
    """The handle of one scheduled call, `func(*args, **kwargs)`.

    Handles are data: read `state`, `error`, the timestamps (`created_at`,
    `started_at`, `finished_at`, in seconds from the app's clock) and
    `duration`. Options are set with `with_options`, never through `add_task`'s
    keyword arguments, which all belong to `func`.
    """

    #: A number in process; a queued task's is its envelope id (a UUID string).
    id: int | str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    is_async: bool
    _name: str
    timeout: float | None
    run_on: str
    state: TaskState
    error: BaseException | None
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    route: str
    method: str
    context: contextvars.Context | None
    _registry: TaskRegistry | None

    __slots__ = (
        "id",
        "func",
        "args",
        "kwargs",
        "is_async",
        "_name",
        "timeout",
        "run_on",
        "state",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "route",
        "method",
        "context",
        "_registry",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        is_async: bool | None = None,
        name: str = "",
        *,
        registry: TaskRegistry | None = None,
        context: contextvars.Context | None = None,
    ) -> None:
        if kwargs is None:
            kwargs = {}
        _fill(self, func, args, kwargs, is_async, name, registry, context)

    def with_options(
        self,
        *,
        timeout: float | None = None,
        name: str | None = None,
        run_on: str | None = None,
        backend: str | None = None,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
    ) -> Task:
        """Set options of this task and return it, for chaining after `add_task`.

        Args:
            timeout: Seconds the task may run. An async task is cancelled at the
                deadline; a sync one cannot be stopped and is left to finish, but
                the next task starts. Either way it is logged as timed out.
            name: The name used in logs and counts (default: the function's
                qualified name).
            run_on: `"success"` (default: only when the handler returned
                normally), `"error"` (only when it raised, after the error
                response is sent) or `"always"`.
            backend: `"inline"` keeps this task in this process when the app's
                `task_backend` is a queue; in process every task is inline already.
            queue, priority, delay: Where and when a queue backend runs the task
                (see docs/task-queues.md). In process, `queue` and `priority` are
                accepted and have nothing to choose between (one queue, run in
                order), and `delay` is refused: the in-process backend cannot defer.
        """
        if self.state is not TaskState.PENDING:
            raise RuntimeError(f"task {self.name} has already {self.state.value}")
        if timeout is not None:
            if not timeout > 0:
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            self.timeout = float(timeout)
        if name is not None:
            self._name = name
        if run_on is not None:
            if run_on not in RUN_ON:
                raise ValueError(f"run_on must be one of {sorted(RUN_ON)}, got {run_on!r}")
            self.run_on = run_on
        if backend is not None or queue is not None or priority is not None or delay is not None:
            self._set_queue_options(backend, queue, priority, delay)
        return self

    def _set_queue_options(
        self, backend: str | None, queue: str | None, priority: int | None, delay: float | None
    ) -> None:
        """The in-process answer to the queue options (a queued task overrides it)."""
        if backend is not None and backend != "inline":
            raise ValueError(f"backend must be 'inline', got {backend!r}")
        if queue is not None and not isinstance(queue, str):
            raise ValueError(f"queue must be a string, got {queue!r}")
        if priority is not None and type(priority) is not int:
            raise ValueError(f"priority must be an int, got {priority!r}")
        if delay is not None:
            raise ValueError(
                f"task {self.name}: delay= needs a queue backend (VelociPy(task_backend=...)); "
                "the in-process backend cannot defer a task"
            )

    @property
    def name(self) -> str:
        """The task's name in logs and counts: set by `with_options`, else the function's."""
        if not self._name:
            self._name = callable_name(self.func)
        return self._name

    @property
    def done(self) -> bool:
        """Whether the task has reached a final state."""
        return self.state in FINAL_STATES

    @property
    def duration(self) -> float | None:
        """Seconds between start and finish, once finished."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def _move(self, state: TaskState) -> None:
        previous = self.state
        self.state = state
        registry = self._registry
        if registry is not None:
            now = registry.now()
            if state is _RUNNING:
                self.started_at = now
            elif state is not _PENDING:
                self.finished_at = now
            self._recount(registry, previous, state)

    def _start(self) -> Call:
        """Move to running (`_move(RUNNING)`, specialised) and return the effect that runs it.

        With `_succeed`, the two state changes every task makes: they run per task,
        so they skip `_move`'s tests of which transition this is, and without a lock
        (no threads move tasks) update the counts straight away. The effect is built
        here too: a call less per task.

        Under the app's running cap the task stays pending: the driver calls the
        effect's `started` once it has a slot (and only an effect with `started`
        waits for one).
        """
        context = self.context
        if context is None:
            call = Call(self.func, self.args, self.kwargs, self.is_async, "task", self.timeout)
        elif self.is_async:  # every async task added in a handler
            # Built field by field: calling the dataclass costs ~1,200 instructions more.
            call = _new_call(Call)
            call.fn = run_in_context
            call.args = (context, self.func, self.args, self.kwargs)
            call.kwargs = {}
            call.is_async = True
            call.purpose = "task"
            call.timeout = self.timeout
            call.started = None
        else:
            call = Call(
                context.run, (self.func, *self.args), self.kwargs, False, "task", self.timeout
            )
        registry = self._registry
        if registry is None:
            self.state = _RUNNING
            return call
        if registry.running_cap is not None:
            call.started = self._began
            return call
        previous = self.state
        self.state = _RUNNING
        self.started_at = registry.now()
        if registry._lock is None and previous is _PENDING:
            registry.pending -= 1
            registry.running += 1
            registry.running_by_id[self.id] = self
        else:
            self._recount(registry, previous, _RUNNING)
        return call

    def _began(self) -> None:
        """The driver got the task a running slot: it runs now (unless a drain gave up
        on it meanwhile, which has logged it abandoned)."""
        if self.state is _PENDING:
            self._move(_RUNNING)

    def _succeed(self) -> None:
        """Move to succeeded (`_move(SUCCEEDED)`, specialised): normally from running, but a
        drain may have marked it abandoned meanwhile (a sync task it gave up on)."""
        previous = self.state
        self.state = _SUCCEEDED
        registry = self._registry
        if registry is not None:
            self.finished_at = registry.now()
            if registry._lock is None and previous is _RUNNING:
                registry.running -= 1
                registry.succeeded += 1
                del registry.running_by_id[self.id]
            else:
                self._recount(registry, previous, _SUCCEEDED)

    def _recount(self, registry: TaskRegistry, previous: TaskState, state: TaskState) -> None:
        """Move this task's count from `previous` to `state`, under the lock if there is one."""
        lock = registry._lock
        if lock is not None:
            lock.acquire()
        try:
            # The two moves every task makes written out (they are most of the locked
            # calls, under WSGI); `moved` names the attributes of any other.
            if previous is _PENDING and state is _RUNNING:
                registry.pending -= 1
                registry.running += 1
            elif previous is _RUNNING and state is _SUCCEEDED:
                registry.running -= 1
                registry.succeeded += 1
            else:
                registry.moved(previous, state)
            if state is _RUNNING:
                registry.running_by_id[self.id] = self
            elif previous is _RUNNING:
                del registry.running_by_id[self.id]
        finally:
            if lock is not None:
                lock.release()

    def _log_extra(self) -> dict[str, Any]:
        return {
            "task_id": self.id,
            "task_name": self.name,
            "route": self.route,
            "method": self.method,
            "duration": self.duration,
        }

    def __repr__(self) -> str:
        return f"<Task #{self.id} {self.name} {self.state.value}>"


def _fill(
    task: Task,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    is_async: bool | None,
    name: str,
    registry: TaskRegistry | None,
    context: contextvars.Context | None,
) -> Task:
    """Set every field of a new `task` (`Task.__init__`'s body) and return it.

    A module function with positional arguments, so that `add_task` can build its
    handle as `_fill(_new_task(Task), ...)`: calling the class goes through
    `type.__call__` and `__init__`'s keyword arguments (their dict packed and
    unpacked), about 4,000 instructions more per task than this call.
    """
    task.id = next(_ids)
    task.func = func
    task.args = args
    task.kwargs = kwargs
    if is_async is None:
        # A plain function answers from its code flags: is_async_callable's own first
        # test, inlined because this runs for every task.
        if type(func) is types.FunctionType:
            is_async = func.__code__.co_flags & _CO_COROUTINE != 0
        else:
            is_async = is_async_callable(func)
    task.is_async = is_async
    task._name = name  # computed on first read: most handles are never asked
    task.timeout = None
    task.run_on = "success"
    task.state = _PENDING
    task.error = None
    task.started_at = None
    task.finished_at = None
    task.route = ""
    task.method = ""
    task.context = context
    task._registry = registry
    if registry is None:
        task.created_at = None
    else:
        task.created_at = registry.now()
        lock = registry._lock  # None: no threads move tasks, so no locking at all
        if lock is None:
            registry.pending += 1
        else:
            lock.acquire()
            try:
                registry.pending += 1
            finally:
                lock.release()
    return task


#: `InContext._first` once the first yield has gone to the event loop.
_STEPPED: Any = object()


class InContext(Generator[Any, Any, Any]):
    """Await a coroutine with every step run inside `context`.

    Works on any event loop (asyncio, trio): it only passes the coroutine's
    yields through, entering the context around each step. `first`, when given,
    is what the coroutine yielded in a first step the caller already ran in
    `context` (`run_in_context` here; the drivers and the built-in server too):
    it goes to the event loop first, and the coroutine resumes from there.

    The object is its own iterator (`await` delegates send, throw and close to
    it), not a generator: one object alive while the task waits, where a
    generator frame and its bound `Context.run` made three. The adapters use
    this same class (`velocipy.adapters._contexts` re-exports it).
    """

    __slots__ = ("_context", "_coroutine", "_first")

    def __init__(self, context: contextvars.Context, coroutine: Any, first: Any = _STEPPED) -> None:
        self._context = context
        self._coroutine = coroutine
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not _STEPPED:
            self._first = _STEPPED
            return first
        return self._context.run(self._coroutine.send, value)

    def throw(self, *error: Any) -> Any:  # cancellation included: hand it in
        self._first = _STEPPED
        return self._context.run(self._coroutine.throw, *error)

    def close(self) -> None:
        self._first = _STEPPED
        self._context.run(self._coroutine.close)


async def run_in_context(
    context: contextvars.Context,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Call async `func(*args, **kwargs)` and await it inside `context`."""
    if type(func) is types.FunctionType:
        # An `async def` function (a task's plain function is async exactly when its code
        # says so): calling it only makes the coroutine, none of its code runs, so there
        # is no context to enter yet. `context.run` here cost ~1,100 instructions a task.
        coroutine = func(*args, **kwargs)
    else:  # a callable object or a partial may do work before it returns the coroutine
        coroutine = context.run(func, *args, **kwargs)
    try:
        first = context.run(coroutine.send, None)
    except StopIteration as stop:  # finished without suspending: most short tasks
        return stop.value
    return await InContext(context, coroutine, first)


class BackgroundTasks:
    """Work to run after the response has been sent, in the order it was added.

    Declare a parameter of this type on a route handler and VelociPy injects a
    fresh container per request. It cannot be declared in a dependency.
    """

    __slots__ = ("_tasks", "_registry")

    def __init__(self, registry: TaskRegistry | None = None) -> None:
        self._tasks: list[Task] = []
        self._registry = registry

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Schedule `func(*args, **kwargs)` to run after the response.

        `func` may be a sync or async function, or any callable. Arguments are
        forwarded exactly as `functools.partial` would forward them; options
        (timeout, name, run_on) go through the returned handle's `with_options`.

        Returns:
            The task's handle.
        """
        if not callable(func):
            raise TypeError(f"add_task() needs a callable, got {func!r}")
        task = _fill(_new_task(Task), func, args, kwargs, None, "", self._registry, _copy_context())
        self._tasks.append(task)
        return task

    @property
    def inline(self) -> BackgroundTasks:
        """Tasks added through this run in this process even when the app's tasks go to a
        queue (for work that cannot travel: a closure, a request-scoped object). In
        process every task runs here already, so this is the container itself."""
        return self

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks scheduled so far, in the order they will run."""
        return tuple(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Any:
        return iter(tuple(self._tasks))

    def __repr__(self) -> str:
        return f"BackgroundTasks({[task.name for task in self._tasks]!r})"


def new_background_tasks(registry: TaskRegistry | None) -> BackgroundTasks:
    """`BackgroundTasks(registry)`, built bare: calling a class enters the interpreter
    once more from C (`type.__call__`, then `__init__`), which costs more time than its
    instruction count says; this is one Python call (see `bench/bytecodes.py`)."""
    tasks: BackgroundTasks = _new_task(BackgroundTasks)
    tasks._tasks = []
    tasks._registry = registry
    return tasks


def release_tasks(
    tasks: Sequence[Task],
    registry: TaskRegistry | None,
    *,
    handler_failed: bool,
    route: str,
    method: str,
) -> tuple[Task, ...]:
    """The tasks to run for how the handler ended, within the app's pending-task limit.

    Each is labelled with `route` and `method`; those whose `run_on` does not
    match are marked skipped. If the pending tasks are past the registry's
    `max_pending`, the chosen ones are all abandoned instead, each logged as an error.
    """
    if not tasks:
        return ()
    skip = "success" if handler_failed else "error"
    chosen: list[Task] = []
    for task in tasks:
        task.route = route
        task.method = method
        if task.run_on == skip:  # one comparison of two str: `is` first would add one
            task._move(_SKIPPED)
        else:
            chosen.append(task)
    if chosen and registry is not None and registry.max_pending is not None:
        if not registry.admits():
            log_abandoned(
                chosen,
                route,
                f"more than {registry.max_pending} tasks are pending app-wide",
                level=logging.ERROR,
            )
            return ()
    return tuple(chosen)


def to_error_path(tasks: Sequence[Task]) -> tuple[Task, ...]:
    """Re-decide released tasks for a request that failed after its handler returned.

    A middleware that fails after `call_next` replaces the handler's answer with an
    error response: the tasks chosen for success that only run on success are
    skipped, and those skipped for wanting an error are pending again.
    """
    chosen: list[Task] = []
    for task in tasks:
        if task.state is _SKIPPED and task.run_on == "error":
            task._move(_PENDING)
        elif task.state is _PENDING and task.run_on == "success":
            task._move(_SKIPPED)
        if task.state is _PENDING:
            chosen.append(task)
    return tuple(chosen)


def log_abandoned(
    tasks: Sequence[Task], route: str, reason: str, *, level: int = logging.WARNING
) -> None:
    """Mark every unfinished task in `tasks` abandoned and log each, by name.

    Also for a task still running that its runner gives up on (a thread that
    cannot be interrupted and dies with the process).
    """
    for task in tasks:
        if task.done:
            continue
        task._move(TaskState.ABANDONED)
        logger.log(
            level,
            "Background task %s for %s abandoned: %s",
            task.name,
            route,
            reason,
            extra=task._log_extra(),
        )


def run_tasks(
    tasks: Sequence[Task],
    route: str,
    error_hooks: Sequence[tuple[Callable[..., Any], bool]] = (),
) -> Generator[Call, Any, None]:
    """The task flow: one `Call` per task, in order; failures logged and hooked, the rest go on.

    `exchange_flow` runs the same loop inline for an in-process request's tasks (see there).
    """
    debug = logger.isEnabledFor(logging.DEBUG)
    # A plain `for`, not `enumerate`: the loop's state lives as long as the tasks run
    # (a second, a thousand flows in flight), and enumerate keeps two more objects
    # (itself and its (index, task) tuple) for the collector to scan.
    for task in tasks:
        if task.state is not _PENDING:  # settled before its turn
            continue
        try:
            yield task._start()
        except BaseException as error:
            yield from task_failed(task, error, tasks, route, error_hooks)
        else:
            task._succeed()
            if debug:  # otherwise skip building the record's extras
                log_succeeded(task, route)


def log_succeeded(task: Task, route: str) -> None:
    """The DEBUG record of a task that succeeded."""
    logger.debug("Background task %s for %s succeeded", task.name, route, extra=task._log_extra())


def task_failed(
    task: Task,
    error: BaseException,
    tasks: Sequence[Task],
    route: str,
    error_hooks: Sequence[tuple[Callable[..., Any], bool]],
) -> Generator[Call, Any, None]:
    """Settle `task`, which raised `error` where its `Call` was yielded, as the task flow does.

    A failure or time-out is logged and hooked, and the flow goes on with the next task;
    anything else (the driver stopped: cancelled at shutdown, the flow closed) is not
    the task's doing: it is logged, the tasks after it are abandoned, and it propagates.
    """
    if isinstance(error, TaskTimedOut):
        task.error = error
        task._move(TaskState.TIMED_OUT)
        logger.error(
            "Background task %s for %s timed out after %ss%s",
            task.name,
            route,
            task.timeout,
            "" if task.is_async else _STILL_RUNNING,
            extra=task._log_extra(),
        )
        yield from _hooks_then_the_rest(error_hooks, task, error, tasks, route)
    elif isinstance(error, Exception):
        if type(error) is ContainedBaseException:
            # The task itself raised SystemExit, KeyboardInterrupt or the like: a
            # failure of this task like any other, under its real type.
            failure: BaseException = error.error
            message = "Background task %s for %s failed (%s: contained, the server goes on)"
            detail: tuple[str, ...] = (type(failure).__name__,)
        else:
            failure, message, detail = error, "Background task %s for %s failed", ()
        task.error = failure
        task._move(TaskState.FAILED)
        logger.error(
            message,
            task.name,
            route,
            *detail,
            exc_info=failure,
            extra=task._log_extra(),
        )
        yield from _hooks_then_the_rest(error_hooks, task, failure, tasks, route)
    else:
        # The driver was stopped (cancelled at shutdown): not the task's doing.
        if task.state is _RUNNING:
            task.error = error
            task._move(TaskState.CANCELLED)
            logger.warning(
                "Background task %s for %s interrupted (%s)",
                task.name,
                route,
                type(error).__name__,
                extra=task._log_extra(),
            )
        # A task still pending never started (it waited for a running slot): it is
        # abandoned with the rest. One already settled (a drain gave up on it and
        # said so) is not logged twice.
        log_abandoned(tasks[_position(tasks, task) :], route, "the server stopped first")
        raise error


def _hooks_then_the_rest(
    hooks: Sequence[tuple[Callable[..., Any], bool]],
    task: Task,
    error: BaseException,
    tasks: Sequence[Task],
    route: str,
) -> Generator[Call, Any, None]:
    """Call the error hooks for `task`; if the flow is cut short in one, abandon the rest.

    The tasks after `task` will not run then, and this is the last place that has
    them: the exchange lets go of its `BackgroundTasks` once they are running.
    """
    try:
        yield from _call_hooks(hooks, task, error, route)
    except BaseException:
        log_abandoned(tasks[_position(tasks, task) + 1 :], route, "the exchange was cut short")
        raise


def _position(tasks: Sequence[Task], task: Task) -> int:
    """Where `task` is in `tasks` (by identity: a task is in its exchange's list once)."""
    for index, candidate in enumerate(tasks):
        if candidate is task:
            return index
    raise ValueError(task)  # pragma: no cover - run_tasks only asks for its own


def _call_hooks(
    hooks: Sequence[tuple[Callable[..., Any], bool]],
    task: Task,
    error: BaseException,
    route: str,
) -> Generator[Call, Any, None]:
    for hook, is_async in hooks:
        try:
            yield Call(hook, (task, error), {}, is_async, "task_error_hook")
        except Exception as failure:
            logger.error(
                "Task-error hook %s failed for task %s of %s",
                callable_name(hook),
                task.name,
                route,
                exc_info=unwrap(failure),
                extra=task._log_extra(),
            )
