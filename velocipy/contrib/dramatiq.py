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
attempts enqueues its message again (its task reruns, then forwards), and lets Dramatiq
acknowledge it only once the broker took that copy.
Dramatiq is LGPL-3.0 licensed.
Needs `pip install 'velocipy[dramatiq]'`.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq.results import ResultBackend, ResultFailure, ResultMissing, Results

from velocipy.core import Task
from velocipy.core._envelopes import engine_batches
from velocipy.tasks._publisher import BatchingBackend, Pending
from velocipy.tasks._worker import ForwardFailed, batch_runner, describe

#: The name of the generic actor every batch is sent to.
ACTOR_NAME = "velocipy_run_batch"
#: Dramatiq's default queue.
DEFAULT_QUEUE = "default"
#: Our own per-task timeouts apply on the worker; Dramatiq's 10-minute limit would cut
#: a long batch, so the actor's is a day.
_ACTOR_TIME_LIMIT_MS = 24 * 3600 * 1000
#: The first pause before a message whose forward failed is delivered again, doubled at
#: each delivery up to the maximum.
_REDELIVERY_BACKOFF_MS = 2000
_MAX_REDELIVERY_BACKOFF_MS = 10 * 60 * 1000
#: The option counting a message's deliveries after a failed forward.
_REDELIVERED = "velocipy_redelivered"

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
                result = results.get_result(message)
            except ResultMissing:
                continue
            except ResultFailure:
                # The message itself failed: Dramatiq gave up delivering it again after
                # its forward failed (the task's own failure is a stored "failed").
                return "failed"
            # None: the message was enqueued again after its forward failed; its task
            # has yet to run again.
            return None if result is None else str(result)
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
    to `forward_max_backoff`. If every attempt fails, the actor enqueues its own
    message again, delayed (2 s at first, doubling), up to `redeliveries` times: its
    task runs again and the rest is forwarded then (at least once). The actor returns,
    and Dramatiq acknowledges the message, only once the broker took that copy: while
    the broker refuses it, the actor keeps trying (the worker thread waits, as
    Dramatiq's own acknowledgement does). After `redeliveries`, the message fails
    (Dramatiq's dead-letter queue). A task's own failure is never retried (it is
    logged, and the rest run). Adds Dramatiq's `CurrentMessage` middleware to the
    broker if it has none (the actor enqueues its current message again).
    """
    names = list(queues) or [DEFAULT_QUEUE]
    if not any(isinstance(middleware, CurrentMessage) for middleware in broker.middleware):
        broker.add_middleware(CurrentMessage())

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

    run = batch_runner(
        forward,
        context_vars=context_vars,
        on_task_error=on_task_error,
        forward_attempts=forward_attempts,
        forward_backoff=forward_backoff,
        forward_max_backoff=forward_max_backoff,
    )
    results = _results_backend(broker) is not None

    def velocipy_run_batch(batch: list[dict[str, Any]]) -> str | None:
        try:
            task = run(batch)
        except ForwardFailed as failed:
            message = CurrentMessage.get_current_message()
            delivered = message.options.get(_REDELIVERED, 0) if message is not None else 0
            if message is None or delivered >= redeliveries:
                logger.error(
                    "giving up the Dramatiq message %s after %d redeliveries: its rest "
                    "goes with it to the dead-letter queue (%s)",
                    batch[0].get("id"),
                    delivered,
                    describe(failed.rest),
                )
                raise  # Dramatiq fails the message (no retries: see the options)
            _deliver_again(
                broker, message, delivered, failed, pause=forward_backoff, most=forward_max_backoff
            )
            # Nothing to store: the copy's run stores how the task ended.
            return None
        # With the Results middleware, the message's result is how its one task ended
        # (`DramatiqBackend.get_state`); without, None (Dramatiq warns about others).
        return task.state.value if results else None

    actor: dramatiq.Actor[Any, Any] = dramatiq.Actor(
        velocipy_run_batch,
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=names[0],
        priority=0,
        options={
            # Dramatiq's Retries middleware never retries the actor: a task's failure
            # was logged by the batch (a retry would rerun the tasks that succeeded),
            # and the actor delivers a message whose forward failed again itself.
            "max_retries": 0,
            "time_limit": _ACTOR_TIME_LIMIT_MS,
            # An option the broker refuses unless the Results middleware is on it.
            **({"store_results": True} if results else {}),
        },
    )
    for name in names[1:]:
        broker.declare_queue(name)
    return actor


def _deliver_again(
    broker: dramatiq.Broker,
    message: dramatiq.Message[Any],
    delivered: int,
    failed: ForwardFailed,
    *,
    pause: float,
    most: float,
) -> None:
    """Enqueue `message` again, delayed, counting the delivery; return once the broker
    took it, trying again (every `pause` seconds, doubling up to `most`) until then.

    This is what Dramatiq's Retries middleware would do, but where a refusal can be
    seen: the middleware's enqueue fails in the broker's hook, which Dramatiq logs and
    then acknowledges the message, and the rest it carried would be lost.
    """
    copy = message.copy(options={_REDELIVERED: delivered + 1})
    delay = min(_REDELIVERY_BACKOFF_MS * 2**delivered, _MAX_REDELIVERY_BACKOFF_MS)
    attempt = 1
    while True:
        try:
            broker.enqueue(copy, delay=delay)
        except Exception as error:
            # The message stays unacknowledged meanwhile: a worker killed now loses
            # nothing either (the broker delivers it again).
            logger.warning(
                "could not enqueue the Dramatiq message %s again (attempt %d: %r); trying "
                "again in %.2g s, the rest waiting: %s",
                message.message_id,
                attempt,
                error,
                pause,
                describe(failed.rest),
            )
            time.sleep(pause)
            pause = min(pause * 2, most)
            attempt += 1
            continue
        logger.error(
            "enqueued the Dramatiq message %s again (delivery %d, in %d ms): its task will "
            "run again, then enqueue the rest (%s)",
            message.message_id,
            delivered + 1,
            delay,
            describe(failed.rest),
        )
        return


def _results_backend(broker: dramatiq.Broker) -> ResultBackend | None:
    """The result backend of the broker's Results middleware, if it has one."""
    for middleware in broker.middleware:
        if isinstance(middleware, Results):
            backend: ResultBackend = middleware.backend
            return backend
    return None
