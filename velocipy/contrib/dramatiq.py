"""Dramatiq as a task backend: the web process publishes, a Dramatiq worker runs.

Web process::

    app = VelociPy(task_backend=DramatiqBackend(broker, queue="web"))

Worker (a module that imports the task functions' modules, not the web app)::

    broker = RedisBroker(url="redis://127.0.0.1:6379/0")
    dramatiq.set_broker(broker)
    install(broker, queues=["web"])   # declares the one generic actor
    # dramatiq that_module --queues web

Each request's batch is one Dramatiq message (one per run of tasks sharing
queue and delay), whose id is the first task's envelope id, enqueued by one
publishing thread per process (a `BatchPublisher`) so that the event loop never
waits on the broker. The worker runs that one task, then enqueues the rest as
the next message under the next task's id (`run_next`): every task is a message
of its own id, in order, whatever the one before did. Dramatiq acks a message
only after the actor returns, so a worker killed mid-task leaves it to be
delivered again (at least once); a worker that could not enqueue the rest after its
attempts hands the message to Dramatiq's Retries middleware, which delivers it again.
Dramatiq is LGPL-3.0 licensed.
Needs `pip install 'velocipy[dramatiq]'`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dramatiq
from dramatiq.results import ResultBackend, ResultFailure, ResultMissing, Results

from velocipy.core import Task
from velocipy.core._envelopes import engine_batches
from velocipy.tasks._publisher import BatchingBackend, Pending
from velocipy.tasks._worker import ForwardFailed, describe, error_hooks, run_next

#: The name of the generic actor every batch is sent to.
ACTOR_NAME = "velocipy_run_batch"
#: Dramatiq's default queue.
DEFAULT_QUEUE = "default"
#: Our own per-task timeouts apply on the worker; Dramatiq's 10-minute limit would cut
#: a long batch, so the actor's is a day.
_ACTOR_TIME_LIMIT_MS = 24 * 3600 * 1000
#: The first pause before Dramatiq delivers again a message whose forward failed (its
#: Retries middleware doubles it each time, with jitter, up to its maximum).
_REDELIVERY_BACKOFF_MS = 2000

logger = logging.getLogger("velocipy")


class DramatiqBackend(BatchingBackend):
    """Publish each request's tasks to a Dramatiq broker.

    Args:
        broker: The Dramatiq broker (`RedisBroker`, `RabbitmqBroker`) that receives
            the batches.
        queue: The queue for tasks that name none (default: `"default"`).
        retries: Publishing attempts after the first, on connection errors, all
            within the backend's `deadline`.
        **options: `publish`, `deadline`, `on_failure`, `context_vars`: see `TaskBackend`.
    """

    supports_defer = True
    # Dramatiq orders work by the actor's priority, not the message's.
    supports_priority = False
    # With Dramatiq's Results middleware on the broker (see `get_state`).
    supports_get_result = True
    # Dramatiq 2 renamed ConnectionError; both names are the same class where both exist.
    retryable = (
        getattr(dramatiq.errors, "BrokerConnectionError", None) or dramatiq.errors.ConnectionError,
        OSError,
    )

    def __init__(
        self,
        broker: dramatiq.Broker,
        *,
        queue: str | None = None,
        retries: int = 2,
        **options: Any,
    ) -> None:
        super().__init__(queue=queue or DEFAULT_QUEUE, retries=retries, **options)
        self.broker = broker
        #: The queues this process's tasks were sent to: a result's key names its queue.
        self._queues: list[str] = [self.queue or DEFAULT_QUEUE]

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        queue = getattr(task, "queue", None)
        if queue is not None and queue not in self._queues:
            self._queues.append(queue)

    def get_state(self, queue_id: str) -> str | None:
        """How the task of the message `queue_id` ended, as the worker stored it with
        Dramatiq's Results middleware (on the broker here and on the worker's):
        `"succeeded"`, `"failed"` (the task raised; the rest still ran), ...; or None
        while there is no result: not run yet, running, unknown, or expired
        (`result_ttl`, 10 minutes by default). Dramatiq keeps no other states.

        A result is stored under its message's queue: this looks in the backend's
        queue and in each queue a task of this process was given with `with_options`.
        """
        results = _results_backend(self.broker)
        if results is None:
            raise NotImplementedError(
                "DramatiqBackend.get_state needs Dramatiq's Results middleware on the "
                "broker: broker.add_middleware(Results(backend=RedisBackend(...))), "
                "here and on the worker"
            )
        for queue in list(self._queues):
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=queue,
                actor_name=ACTOR_NAME,
                args=(),
                kwargs={},
                options={},
                message_id=queue_id,
            )
            try:
                return str(results.get_result(message))
            except ResultMissing:
                continue
            except ResultFailure:
                # The message itself failed: Dramatiq gave up delivering it again after
                # its forward failed (the task's own failure is a stored "failed").
                return "failed"
        return None

    def send_batches(self, pendings: Sequence[Pending]) -> None:
        """Runs on the publishing thread: one `enqueue` per message, through Dramatiq's
        own client (its Redis broker enqueues with a script, RabbitMQ with a confirm)."""
        for pending in pendings:
            for batch in engine_batches(pending.envelopes):
                first = batch[0]
                message: dramatiq.Message[Any] = dramatiq.Message(
                    queue_name=first.queue or DEFAULT_QUEUE,
                    actor_name=ACTOR_NAME,
                    args=([envelope.to_dict() for envelope in batch],),
                    kwargs={},
                    options={},
                    message_id=first.id,
                )
                delay = int(first.delay * 1000) if first.delay else None
                self.broker.enqueue(message, delay=delay)
            pending.sent = True

    def close(self) -> None:
        super().close()
        self.broker.close()


def install(
    broker: dramatiq.Broker,
    *,
    queues: Iterable[str] = (DEFAULT_QUEUE,),
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    on_task_error: Iterable[Callable[..., Any]] = (),
    forward_attempts: int = 6,
    forward_backoff: float = 0.5,
    forward_max_backoff: float = 8.0,
    redeliveries: int = 20,
) -> dramatiq.Actor[Any, Any]:
    """Declare the generic actor that runs published batches, on every queue in `queues`.

    `context_vars` are restored on the worker besides `request_id` and
    `traceparent`; `on_task_error` hooks are called as `hook(task, exception)`
    for each failed task, as in process. Returns the actor.

    After its task, a message enqueues the rest of its request's tasks: up to
    `forward_attempts` times, `forward_backoff` seconds apart at first, doubling up
    to `forward_max_backoff`. If every attempt fails, Dramatiq's Retries middleware
    enqueues the message again with its backoff (up to `redeliveries` times): its
    task runs again and the rest is forwarded then (at least once). A task's own
    failure is never retried (it is logged, and the rest run).
    """
    names = list(queues) or [DEFAULT_QUEUE]
    variables = tuple(context_vars)
    hooks = error_hooks(on_task_error)

    def forward(rest: Sequence[Mapping[str, Any]]) -> None:
        # The continuation: the next task, as a message of its own under its own id.
        following = rest[0]
        message: dramatiq.Message[Any] = dramatiq.Message(
            queue_name=following.get("queue") or names[0],
            actor_name=ACTOR_NAME,
            args=(list(rest),),
            kwargs={},
            options={},
            message_id=str(following["id"]),
        )
        broker.enqueue(message)

    results = _results_backend(broker) is not None

    def velocipy_run_batch(batch: list[dict[str, Any]]) -> str | None:
        try:
            task = run_next(
                batch,
                forward=forward,
                context_vars=variables,
                hooks=hooks,
                engine_context=True,
                forward_attempts=forward_attempts,
                forward_backoff=forward_backoff,
                forward_max_backoff=forward_max_backoff,
            )
        except ForwardFailed as failed:
            logger.error(
                "handing the Dramatiq message %s back to its Retries middleware: its task "
                "%s will run again, then enqueue the rest (%s)",
                batch[0].get("id"),
                batch[0].get("task"),
                describe(failed.rest),
            )
            raise
        # With the Results middleware, the message's result is how its one task ended
        # (`DramatiqBackend.get_state`); without, None (Dramatiq warns about others).
        return task.state.value if results else None

    def retry_when(retries: int, error: BaseException) -> bool:
        # Only a forward that failed is worth delivering again: a task's own failure
        # was logged by the batch, and a retry would rerun the tasks that succeeded.
        return isinstance(error, ForwardFailed) and retries < redeliveries

    actor: dramatiq.Actor[Any, Any] = dramatiq.Actor(
        velocipy_run_batch,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=names[0],
        priority=0,
        options={
            "max_retries": redeliveries,
            "retry_when": retry_when,
            "min_backoff": _REDELIVERY_BACKOFF_MS,
            "time_limit": _ACTOR_TIME_LIMIT_MS,
            # An option the broker refuses unless the Results middleware is on it.
            **({"store_results": True} if results else {}),
        },
    )
    for name in names[1:]:
        broker.declare_queue(name)
    return actor


def _results_backend(broker: dramatiq.Broker) -> ResultBackend | None:
    """The result backend of the broker's Results middleware, if it has one."""
    for middleware in broker.middleware:
        if isinstance(middleware, Results):
            backend: ResultBackend = middleware.backend
            return backend
    return None
