"""Task backends: where an app's background tasks run, chosen by configuration.

`VelociPy(task_backend=...)` takes one `TaskBackend`. `InProcess` (the default)
runs tasks in the serving process, as the seed page describes. A queue backend
(`velocipy.contrib.celery.CeleryBackend`, `velocipy.contrib.dramatiq.DramatiqBackend`,
or your own) receives each request's tasks as one batch of `Envelope`s through
`publish`, and a worker runs them.

A backend reads like Django's task backends: capability flags as class
attributes, one `validate_task` that refuses what the backend cannot run before
anything is published, one abstract `publish`, and `apublish` derived from it.
What a backend must guarantee is in docs/task-queues.md.

Pure: a backend's `publish` does I/O, but the core only ever yields it as a
`Call` effect with a deadline, which the drivers perform (async drivers in a
worker thread, so the event loop never waits on a broker).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._envelopes import CARRIED_CONTEXT, Envelope

if TYPE_CHECKING:
    from ._queue import Settlement
    from ._tasks import Task

#: When a request's queued tasks are published.
PUBLISH_MODES = frozenset({"after_response", "before_response"})
#: What happens to a batch the backend could not publish within its deadline.
FAILURE_POLICIES = frozenset({"log", "inline", "fail"})


class TaskBackend:
    """What the core needs of a place to run tasks. Subclass it for a new engine.

    Args:
        queue: The engine's queue for tasks that name none.
        publish: `"after_response"` (default): after the response is sent and the
            request's `yield` dependencies were cleaned up (after the commit); a
            failing cleanup publishes nothing. `"before_response"`: before the
            status line, so a 200 means the tasks are in the broker.
        deadline: Seconds one publish may take, retries included, before the
            request stops waiting for it (default 2).
        on_failure: When publishing fails or passes the deadline: `"log"` (default:
            log an error and call the app's `on_task_error` hooks), `"inline"` (run
            the tasks in this process instead) or `"fail"` (answer 503; only with
            `publish="before_response"`).
        context_vars: Context variables to carry to the worker, besides
            `request_id` and `traceparent`. Their values must be JSON-ready.
    """

    #: Whether tasks leave this process (False only for `InProcess`).
    queued: ClassVar[bool] = True
    #: Whether `with_options(delay=...)` can be honoured.
    supports_defer: ClassVar[bool] = False
    #: Whether `with_options(priority=...)` can be honoured.
    supports_priority: ClassVar[bool] = False
    #: Whether the worker can run `async def` tasks.
    supports_async_task: ClassVar[bool] = True
    #: Whether `get_state(queue_id)` can answer.
    supports_get_result: ClassVar[bool] = False
    #: Whether `apublish` is native (awaited on the loop) rather than derived from `publish`.
    supports_async_publish: ClassVar[bool] = False
    #: Whether `publish`/`apublish` end their own wait at `deadline` (raising
    #: `TaskTimedOut`); otherwise the drivers bound the call with a timer of their own.
    bounds_deadline: ClassVar[bool] = False
    #: Whether `apublish_detached` takes a batch without the request waiting for the
    #: broker (only after the response with the "log" policy: nothing is left to decide
    #: for the request then). Set per backend, from its settings.
    detaches = False
    #: Whether `validate_task` may refuse a task that has no options yet, as `add_task`
    #: makes it: only then does `add_task` call it (`with_options` always does). True
    #: unless the backend's checks are known to look at options only. Set per backend.
    checks_new_tasks = True

    def __init__(
        self,
        *,
        queue: str | None = None,
        publish: str = "after_response",
        deadline: float = 2.0,
        on_failure: str = "log",
        context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    ) -> None:
        if publish not in PUBLISH_MODES:
            raise ValueError(f"publish must be one of {sorted(PUBLISH_MODES)}, got {publish!r}")
        if on_failure not in FAILURE_POLICIES:
            raise ValueError(
                f"on_failure must be one of {sorted(FAILURE_POLICIES)}, got {on_failure!r}"
            )
        if on_failure == "fail" and publish != "before_response":
            raise ValueError(
                'on_failure="fail" needs publish="before_response": after the response '
                "there is no request left to fail"
            )
        if not deadline > 0:
            raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.queue = queue
        self.publish_mode = publish
        self.before_response = publish == "before_response"
        self.deadline = float(deadline)
        self.on_failure = on_failure
        self.context_vars: tuple[contextvars.ContextVar[Any], ...] = (
            *CARRIED_CONTEXT,
            *context_vars,
        )
        if type(self).validate_task is TaskBackend.validate_task:
            # Of the checks below, only the one of async tasks can refuse a new task.
            self.checks_new_tasks = not self.supports_async_task

    def validate_task(self, task: Task) -> None:
        """Raise `ValueError` for an option this backend cannot honour (called at
        `with_options`, in the handler, before anything is published)."""
        queued = getattr(task, "delay", None)
        if queued is not None and not self.supports_defer:
            raise ValueError(f"task {task.name}: {type(self).__name__} cannot delay a task")
        if getattr(task, "priority", None) is not None and not self.supports_priority:
            raise ValueError(f"task {task.name}: {type(self).__name__} has no per-task priority")
        if task.is_async and not self.supports_async_task:
            raise ValueError(f"task {task.name}: {type(self).__name__} cannot run async tasks")

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Hand one request's batch to the engine, in order; raise if it was not taken.

        Called in a worker thread under the async servers; it may block, up to
        the backend's own timeouts. Bounded retries belong here.
        """
        raise NotImplementedError(f"{type(self).__name__} does not publish tasks")

    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        """The async form of `publish`, for backends whose client is async
        (`supports_async_publish = True`); by default it calls `publish`."""
        self.publish(envelopes)

    def detach(self, envelopes: Sequence[Envelope], settlement: Settlement) -> bool:
        """`apublish_detached`'s work done without an `await`, when `detaches` is set: queue
        the batch and return True (settling it later as `apublish_detached` does), or
        False when it cannot be done here, in the thread stepping the request's flow
        (no event loop running in it). The core calls it in the flow itself, with no
        effect for the drivers to perform, so it must neither block nor do I/O; on False
        the core yields `apublish_detached` as before. By default: False."""
        return False

    async def apublish_detached(
        self, envelopes: Sequence[Envelope], settlement: Settlement
    ) -> bool:
        """Publish without making the request wait, when `detaches` is set: return True
        once the batch is queued, and later call `settlement.published()`, or drive
        `settlement.failed(error)` (logging and hooks) on this event loop. Return False
        after publishing as `apublish` does (the caller then settles the tasks)."""
        await self.apublish(envelopes)
        return False

    def get_state(self, queue_id: str) -> str | None:
        """The engine's state of a published task, if the engine keeps results."""
        raise NotImplementedError(f"{type(self).__name__} keeps no task results")

    def close(self) -> None:
        """Release connections; called when the app shuts down."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} queue={self.queue!r} publish={self.publish_mode!r}>"


class InProcess(TaskBackend):
    """Run tasks in the serving process, after the response (the default)."""

    queued = False

    def __init__(self) -> None:
        super().__init__()


class RecordingBackend(TaskBackend):
    """Record each published batch instead of sending it (for tests).

    Every envelope goes through a JSON round trip, so what is recorded is exactly
    what a worker would receive. With `wraps`, the wrapped backend's settings and
    validation apply (the TestClient records this way).
    """

    supports_defer = True
    supports_priority = True

    def __init__(self, wraps: TaskBackend | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.wraps = wraps
        if wraps is not None:
            self.queue = wraps.queue
            self.publish_mode = wraps.publish_mode
            self.before_response = wraps.before_response
            self.deadline = wraps.deadline
            self.on_failure = wraps.on_failure
            self.context_vars = wraps.context_vars
        #: The published batches, as the JSON-decoded dicts a worker gets.
        self.batches: list[list[dict[str, Any]]] = []
        #: How many of `batches` the TestClient has run already.
        self.ran = 0

    def validate_task(self, task: Task) -> None:
        if self.wraps is not None:
            self.wraps.validate_task(task)
        else:
            super().validate_task(task)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        wire = json.dumps([envelope.to_dict() for envelope in envelopes])
        self.batches.append(json.loads(wire))

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """Every recorded envelope, in publishing order."""
        return [envelope for batch in self.batches for envelope in batch]
