"""Celery as a task backend: the web process publishes, a Celery worker runs.

Web process::

    app = VelociPy(task_backend=CeleryBackend(celery_app, queue="web"))

Worker (a module that imports the task functions' modules, not the web app)::

    celery_app = Celery("tasks", broker="redis://127.0.0.1:6379/0")
    install(celery_app)              # registers the one generic task
    # celery -A that_module worker --pool=solo -Q web

Each request's batch is one Celery message (one per run of tasks sharing
queue, priority and delay) sent with `send_task`, so the web process needs
no task registered. Its id is the first task's `queue_id`. The generic task is
declared with `acks_late` and `reject_on_worker_lost`: a worker killed
mid-batch leaves the message to be delivered again (at least once).
Needs `pip install 'velocipy[celery]'`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import Celery

from velocipy.core._backends import TaskBackend
from velocipy.core._envelopes import Envelope, engine_batches
from velocipy.tasks._worker import error_hooks, run_batch

#: The name of the generic task every batch is sent to.
TASK_NAME = "velocipy.run_batch"


class CeleryBackend(TaskBackend):
    """Publish each request's tasks to Celery.

    Args:
        celery_app: The `Celery` app whose broker receives the batches.
        queue: The Celery queue for tasks that name none (default: Celery's own).
        retries: Publishing attempts after the first, on connection errors
            (Celery's publish retry), all within the backend's `deadline`.
        **options: `publish`, `deadline`, `on_failure`, `context_vars`: see `TaskBackend`.
    """

    supports_defer = True
    supports_priority = True
    supports_get_result = True

    def __init__(
        self, celery_app: Celery, *, queue: str | None = None, retries: int = 2, **options: Any
    ) -> None:
        super().__init__(queue=queue, **options)
        self.celery_app = celery_app
        self.retry_policy = {
            "max_retries": retries,
            "interval_start": 0.0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        }

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        for batch in engine_batches(envelopes):
            first = batch[0]
            options: dict[str, Any] = {}
            if first.queue is not None:
                options["queue"] = first.queue
            if first.priority is not None:
                options["priority"] = first.priority
            if first.delay:
                options["countdown"] = first.delay
            self.celery_app.send_task(
                TASK_NAME,
                args=[[envelope.to_dict() for envelope in batch]],
                task_id=first.id,
                retry=True,
                retry_policy=self.retry_policy,
                **options,
            )

    def get_state(self, queue_id: str) -> str | None:
        """Celery's state of the message `queue_id` went in (needs a result backend)."""
        return str(self.celery_app.AsyncResult(queue_id).state)

    def close(self) -> None:
        self.celery_app.close()


def install(
    celery_app: Celery,
    *,
    context_vars: Iterable[contextvars.ContextVar[Any]] = (),
    on_task_error: Iterable[Callable[..., Any]] = (),
) -> Any:
    """Register the generic task that runs published batches on `celery_app`'s workers.

    `context_vars` are restored on the worker besides `request_id` and
    `traceparent`; `on_task_error` hooks are called as `hook(task, exception)`
    for each failed task, as in process. Returns the Celery task.
    """
    variables = tuple(context_vars)
    hooks = error_hooks(on_task_error)

    def run_velocipy_batch(batch: list[dict[str, Any]]) -> dict[str, str]:
        tasks = run_batch(batch, context_vars=variables, hooks=hooks)
        return {str(data["id"]): task.state.value for data, task in zip(batch, tasks, strict=True)}

    return celery_app.task(
        name=TASK_NAME,
        acks_late=True,
        reject_on_worker_lost=True,
        serializer="json",
    )(run_velocipy_batch)
