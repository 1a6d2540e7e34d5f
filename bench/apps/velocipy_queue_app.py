"""`POST /signup` + one task, the task published to Celery on Redis (bench.task_queues).

The handler is `velocipy_app`'s, word for word; only `task_backend=` differs.
`BENCH_REDIS_URL` and `BENCH_QUEUE` say where the batches go.
"""

from __future__ import annotations

import dataclasses
import os

from celery import Celery

from bench.apps._common import record_signup_async
from velocipy import BackgroundTasks, VelociPy
from velocipy.contrib.celery import CeleryBackend

celery_app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
app = VelociPy(
    task_backend=CeleryBackend(celery_app, queue=os.environ.get("BENCH_QUEUE", "velocipy-bench"))
)


@dataclasses.dataclass
class Signup:
    email: str
    name: str


@app.post("/signup")
async def signup(data: Signup, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(record_signup_async, data.email)
    return {"status": "ok", "email": data.email}
