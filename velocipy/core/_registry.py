"""The app's task registry: live counts of background tasks by state, and their limits.

`app.tasks` is one `TaskRegistry`. Task handles record every state change in
it, so a health endpoint or a shutdown log can say how many tasks are pending
or running, name the running ones, and how many ended in each way.

Being pure, the registry neither reads a clock nor takes a lock by itself:
the application passes in `clock` (seconds, for the handles' timestamps) and
`lock` (an object with `acquire()` and `release()`, such as a
`threading.Lock`, guarding the counts when tasks run on several threads).
`VelociPy` passes `time.time`; the WSGI adapter installs a lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._tasks import Task, TaskState


#: How many running tasks' names `describe` gives before it counts the rest.
NAMES_SHOWN = 10


def _no_clock() -> None:
    return None


class Lock(Protocol):
    """What the registry needs of a lock."""

    def acquire(self) -> Any: ...
    def release(self) -> Any: ...


class _NoLock:
    """For an app whose tasks never move on two threads at once (no threads at all)."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


_NO_LOCK = _NoLock()


def needs_lock(registry: TaskRegistry) -> bool:
    """Whether `registry` still has no real lock (an adapter driving threads should add one)."""
    return registry._lock is None


class TaskRegistry:
    """Counts of tasks by state, the running ones by name, and the pending-task limit.

    Args:
        clock: Returns the current time in seconds (or None: no timestamps).
        lock: Guards the counts; a `threading.Lock` when tasks run on threads.
        max_pending: At most this many tasks may wait to run, app-wide; tasks
            released past it are abandoned with an error logged (never silently).
            None means no limit.
        max_in_flight: The bound on tasks in flight (pending and running, counted
            together) past which the adapters stop taking new requests until
            some finish (backpressure: nothing is refused). The core only
            records it; `has_room()` is what adapters ask. None means no bound.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float | None] = _no_clock,
        lock: Lock | None = None,
        max_pending: int | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        self.now = clock
        #: The real lock, or None: task handles skip locking entirely then (two Python-level
        #: no-op calls per state change were a tenth of a task's bookkeeping). Taken with
        #: explicit acquire/release: `with lock:` cost four times as much.
        self._lock: Lock | None = None
        self.lock = lock if lock is not None else _NO_LOCK
        self.max_pending = max_pending
        #: The app's `max_running_tasks`: when set, a task counts as running only once
        #: the driver has a slot for it (it is pending while it waits).
        self.running_cap: int | None = None
        self.max_in_flight = max_in_flight
        from ._tasks import TaskState

        self._states = TaskState
        #: Each state's attribute name (`.value` is a property: a Python call per read).
        self._names = {state: state.value for state in TaskState}
        # Tasks per state: one integer attribute each, named by the state's value, which
        # task handles update under `lock` as they move. Every task makes five updates;
        # an attribute costs a third of a dict entry keyed by an Enum member (measured
        # with callgrind), and the servers read two of them per request with tasks.
        #: Tasks waiting to run (a task under the running cap waits here for a slot).
        self.pending = 0
        #: Tasks running now.
        self.running = 0
        self.succeeded = 0
        self.failed = 0
        self.timed_out = 0
        self.cancelled = 0
        self.abandoned = 0
        self.skipped = 0
        self.published = 0
        #: The running tasks by id, in the order they started.
        self.running_by_id: dict[int | str, Task] = {}

    @property
    def lock(self) -> Lock:
        """The lock guarding the counts (a no-op one until an adapter installs a real one)."""
        return self._lock if self._lock is not None else _NO_LOCK

    @lock.setter
    def lock(self, lock: Lock) -> None:
        self._lock = None if isinstance(lock, _NoLock) else lock

    def admits(self) -> bool:
        """Whether the pending tasks are within `max_pending`."""
        limit = self.max_pending
        return limit is None or self.pending <= limit

    def has_room(self) -> bool:
        """Whether the tasks in flight (pending plus running) are below `max_in_flight`."""
        limit = self.max_in_flight
        if limit is None:
            return True
        return self.pending + self.running < limit

    def count(self, state: str) -> int:
        """How many tasks are in `state` now (pending, running) or ended in it."""
        value: int = getattr(self, self._states(state).value)
        return value

    @property
    def counts(self) -> dict[TaskState, int]:
        """Tasks per state, as a new dict (the live figures are attributes: `pending`...)."""
        return {state: getattr(self, state.value) for state in self._states}

    def moved(self, previous: TaskState, state: TaskState) -> None:
        """Count a task's move from `previous` to `state` (the caller holds the lock)."""
        before, after = self._names[previous], self._names[state]
        setattr(self, before, getattr(self, before) - 1)
        setattr(self, after, getattr(self, after) + 1)

    def running_names(self) -> list[str]:
        """The names of the tasks running now, oldest first."""
        return [task.name for task in self.running_tasks()]

    def running_tasks(self) -> list[Task]:
        """The handles of the tasks running now, oldest first."""
        self.lock.acquire()
        try:
            return list(self.running_by_id.values())
        finally:
            self.lock.release()

    def describe(self, limit: int | None = NAMES_SHOWN) -> str:
        """What is unfinished, for shutdown logs: "2 running (a, b), 3 pending", or "nothing".

        Names the first `limit` running tasks (all of them if None) and counts the
        rest, so that thousands of tasks still make one readable line;
        `log_every_name` puts the whole list at DEBUG.
        """
        self.lock.acquire()
        try:
            running = list(self.running_by_id.values())
            pending = self.pending
        finally:
            self.lock.release()
        parts = []
        if running:
            shown = running if limit is None else running[:limit]
            names = ", ".join(task.name for task in shown)
            if len(shown) < len(running):
                names += f" and {len(running) - len(shown)} more"
            parts.append(f"{len(running)} running ({names})")
        if pending:
            parts.append(f"{pending} pending")
        return ", ".join(parts) or "nothing"

    def log_every_name(self, log: logging.Logger) -> None:
        """Log, at DEBUG, every running task's name when `describe` had to leave some out."""
        if log.isEnabledFor(logging.DEBUG) and len(self.running_by_id) > NAMES_SHOWN:
            log.debug("Every running background task: %s", self.describe(limit=None))

    @property
    def unfinished(self) -> int:
        """How many tasks are pending or running."""
        return self.pending + self.running

    def snapshot(self) -> dict[str, Any]:
        """Every count and the running tasks' names, as one JSON-friendly dict."""
        self.lock.acquire()
        try:
            counts = {state.value: getattr(self, state.value) for state in self._states}
            names = [task.name for task in list(self.running_by_id.values())]
        finally:
            self.lock.release()
        return {**counts, "running_names": names}

    def __repr__(self) -> str:
        return f"<TaskRegistry pending={self.pending} running={self.running}>"
