"""`POST /signup` + one task, the task published to Celery on Redis (bench.task_queues).

The handler is `velocipy_app`'s, word for word; only `task_backend=` differs.
`BENCH_REDIS_URL` and `BENCH_QUEUE` say where the batches go. With
`BENCH_QUEUE_BACKEND=null` the backend takes each batch and sends it nowhere: what
is left is VelociPy's own part of publishing (envelopes, the worker-thread hop,
the deadline), without Celery's client.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from celery import Celery

from bench.apps._common import record_signup_async
from velocipy import BackgroundTasks, VelociPy
from velocipy.contrib.celery import CeleryBackend
from velocipy.tasks import Envelope, TaskBackend


class NullBackend(TaskBackend):
    """Takes every batch, sends it nowhere."""

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        return None


class NullAsyncBackend(NullBackend):
    """The same, published on the event loop: no worker-thread hop."""

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
