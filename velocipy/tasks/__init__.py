"""Task backends: where `add_task` work runs, chosen by `VelociPy(task_backend=...)`.

`InProcess` (the default) runs tasks in the serving process; a queue backend
(`velocipy.contrib.celery.CeleryBackend`, `velocipy.contrib.dramatiq.DramatiqBackend`)
publishes them and a worker runs them with `run_next` (one task per engine message,
the rest forwarded as the next message). `TaskBackend` is the
protocol for other engines (`BatchingBackend` gives one a publishing thread that
sends many requests' batches per round trip); `RecordingBackend` records batches
for tests. See
docs/task-queues.md.
"""

from velocipy.core._backends import InProcess, RecordingBackend, TaskBackend
from velocipy.core._envelopes import (
    CARRIED_CONTEXT,
    Envelope,
    TaskNotPortable,
    current_task_id,
    engine_batches,
    request_id,
    traceparent,
)
from velocipy.core._queue import QueuedTask

from ._publisher import BatchingBackend, BatchPublisher, Pending
from ._worker import ForwardFailed, error_hooks, import_task, run_batch, run_next

__all__ = [
    "BatchPublisher",
    "BatchingBackend",
    "CARRIED_CONTEXT",
    "Envelope",
    "ForwardFailed",
    "InProcess",
    "Pending",
    "QueuedTask",
    "RecordingBackend",
    "TaskBackend",
    "TaskNotPortable",
    "current_task_id",
    "engine_batches",
    "error_hooks",
    "import_task",
    "request_id",
    "run_batch",
    "run_next",
    "traceparent",
]
