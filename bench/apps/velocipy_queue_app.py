"""`POST /signup` + one task, the task published to Celery on Redis (bench.task_queues).

The handler is `velocipy_app`'s, word for word; only `task_backend=` differs.
`BENCH_REDIS_URL` and `BENCH_QUEUE` say where the batches go. With
`BENCH_QUEUE_BACKEND=null` the batches go through the publishing thread, which
sends them nowhere: what is left is VelociPy's own part of publishing (envelopes,
the hand-over to the thread and back, the deadline), without the broker's client;
with `null-async`, an async backend takes them on the event loop (no thread).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from celery import Celery

from bench.apps._common import record_signup_async
from velocipy import BackgroundTasks, VelociPy
from velocipy.contrib.celery import CeleryBackend
from velocipy.tasks import BatchingBackend, Envelope, Pending, TaskBackend


class NullBackend(BatchingBackend):
    """Batches go through the publishing thread, which sends them nowhere."""

    def send_batches(self, pendings: Sequence[Pending]) -> None:
        return None


class NullAsyncBackend(TaskBackend):
    """Takes every batch on the event loop, sends it nowhere: no thread at all."""

    supports_async_publish = True

    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        return None


def task_backend() -> TaskBackend:
    queue = os.environ.get("BENCH_QUEUE", "velocipy-bench")
    if os.environ.get("BENCH_QUEUE_BACKEND") == "null":
        return NullBackend(queue=queue)
    if os.environ.get("BENCH_QUEUE_BACKEND") == "null-async":
        return NullAsyncBackend(queue=queue)
    broker = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    return CeleryBackend(Celery("bench", broker=broker), queue=queue)


app = VelociPy(task_backend=task_backend())


@dataclasses.dataclass
class Signup:
    email: str
    name: str


@app.post("/signup")
async def signup(data: Signup, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(record_signup_async, data.email)
    return {"status": "ok", "email": data.email}
