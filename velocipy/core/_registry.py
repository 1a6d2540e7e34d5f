"""The app's task registry: live counts of background tasks by state, and their limits.

`app.tasks` is one `TaskRegistry`. Task handles report every state change to
it, so a health endpoint or a shutdown log can say how many tasks are pending
or running, name the running ones, and how many ended in each way.

Being pure, the registry neither reads a clock nor takes a lock by itself:
the application passes in `clock` (seconds, for the handles' timestamps) and
`lock` (a context manager guarding the counts when tasks run on several
threads). `VelociPy` passes `time.time` and a `threading.Lock`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._tasks import Task, TaskState


def _no_clock() -> None:
    return None


class TaskRegistry:
    """Counts of tasks by state, the running ones by name, and the pending-task limit.

    Args:
        clock: Returns the current time in seconds (or None: no timestamps).
        lock: Guards the counts; a `threading.Lock` when tasks run on threads.
        max_pending: At most this many tasks may wait to run, app-wide; tasks
            released past it are abandoned with an error logged (never silently).
            None means no limit.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float | None] = _no_clock,
        lock: contextlib.AbstractContextManager[Any] | None = None,
        max_pending: int | None = None,
    ) -> None:
        self.now = clock
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self.max_pending = max_pending
        self._counts: dict[str, int] = {}
        self._running: dict[int, Task] = {}

    def added(self, task: Task) -> None:
        with self._lock:
            self._counts["pending"] = self._counts.get("pending", 0) + 1

    def renamed(self, task: Task, name: str) -> None:
        """Names are read live from the handles; nothing is cached by name."""

    def moved(self, task: Task, previous: TaskState, state: TaskState) -> None:
        with self._lock:
            counts = self._counts
            counts[previous.value] = counts.get(previous.value, 0) - 1
            counts[state.value] = counts.get(state.value, 0) + 1
            if state.value == "running":
                self._running[task.id] = task
            elif previous.value == "running":
                self._running.pop(task.id, None)

    def admits(self) -> bool:
        """Whether one more task may wait (the pending count is under `max_pending`)."""
        limit = self.max_pending
        return limit is None or self.count("pending") <= limit

    def count(self, state: str) -> int:
        """How many tasks are in `state` now (pending, running) or ended in it."""
        return self._counts.get(state, 0)

    @property
    def pending(self) -> int:
        return self.count("pending")

    @property
    def running(self) -> int:
        return self.count("running")

    def running_names(self) -> list[str]:
        """The names of the tasks running now, oldest first."""
        with self._lock:
            return [task.name for task in self._running.values()]

    def running_tasks(self) -> list[Task]:
        """The handles of the tasks running now, oldest first."""
        with self._lock:
            return list(self._running.values())

    def snapshot(self) -> dict[str, Any]:
        """Every count and the running tasks' names, as one JSON-friendly dict."""
        from ._tasks import TaskState

        with self._lock:
            counts = {state.value: self._counts.get(state.value, 0) for state in TaskState}
            names = [task.name for task in self._running.values()]
        return {**counts, "running_names": names}

    def __repr__(self) -> str:
        return f"<TaskRegistry pending={self.pending} running={self.running}>"
