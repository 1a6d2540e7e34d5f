"""Background tasks: the container handlers fill, and the one place their semantics live.

A handler declares a `BackgroundTasks` parameter and calls `add_task`. The exchange
holds the list until the adapter reports the response sent, then yields one `Call`
per task, in the order added. `run_tasks` is that flow: an exception thrown back in
for a task is logged on the `velocipy` logger with the task's name, route and
traceback, and the next task follows. If the flow itself is interrupted (the
adapter is cancelled at shutdown), the interrupted task and every task not yet
started are logged by name before the interruption propagates: nothing is lost
silently.
"""

from __future__ import annotations

import functools
import inspect
import logging
import types
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._events import Call

logger = logging.getLogger("velocipy")


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


@dataclass(slots=True)
class Task:
    """One scheduled call: `func(*args, **kwargs)`, awaited when `is_async`."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    is_async: bool
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name:
            self.name = callable_name(self.func)


class BackgroundTasks:
    """Work to run after the response has been sent, in the order it was added.

    Declare a parameter of this type on a route handler and VelociPy injects a
    fresh container per request. It cannot be declared in a dependency.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: list[Task] = []

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        """Schedule `func(*args, **kwargs)` to run after the response.

        `func` may be a sync or async function, or any callable. Arguments are
        forwarded exactly as `functools.partial` would forward them.

        Returns:
            The scheduled `Task` (its function, arguments and name).
        """
        if not callable(func):
            raise TypeError(f"add_task() needs a callable, got {func!r}")
        task = Task(func, args, kwargs, is_async_callable(func))
        self._tasks.append(task)
        return task

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The tasks scheduled so far, in the order they will run."""
        return tuple(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"BackgroundTasks({[task.name for task in self._tasks]!r})"


def log_abandoned(tasks: Sequence[Task], route: str, reason: str) -> None:
    """Log every task in `tasks` as abandoned: they were scheduled and will never run."""
    for task in tasks:
        logger.warning(
            "Background task %s for %s abandoned: %s",
            task.name,
            route,
            reason,
            extra={"task_name": task.name, "route": route},
        )


def run_tasks(tasks: Sequence[Task], route: str) -> Generator[Call, Any, None]:
    """The task flow: one `Call` per task, in order; failures logged, the rest continue."""
    for index, task in enumerate(tasks):
        try:
            yield Call(task.func, task.args, task.kwargs, task.is_async, "task")
        except Exception:
            logger.exception(
                "Background task %s for %s failed",
                task.name,
                route,
                extra={"task_name": task.name, "route": route},
            )
        except BaseException as interruption:
            logger.warning(
                "Background task %s for %s interrupted (%s)",
                task.name,
                route,
                type(interruption).__name__,
                extra={"task_name": task.name, "route": route},
            )
            log_abandoned(tasks[index + 1 :], route, "the server stopped first")
            raise
