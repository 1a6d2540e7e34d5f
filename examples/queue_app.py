"""The same handlers, their background tasks run by Celery or Dramatiq workers.

The engine is chosen by the environment, not by the handlers:
`VELOCIPY_QUEUE=celery` (default) or `dramatiq`, `REDIS_URL` for the broker
(default `redis://127.0.0.1:6379/0`). Start a worker, then the server:

    pip install -e '.[celery]'
    celery -A examples.queue_worker worker --pool=solo -Q velocipy-example --loglevel=INFO
    velocipy run examples.queue_app:app

    # or, with Dramatiq (pip install -e '.[dramatiq]'):
    VELOCIPY_QUEUE=dramatiq dramatiq examples.queue_worker --queues velocipy-example
    VELOCIPY_QUEUE=dramatiq velocipy run examples.queue_app:app

then:

    curl -X POST 'localhost:8000/signup?email=ada@example.com'

The worker prints the welcome mail and the CRM update; the server only published them.
"""

from __future__ import annotations

import datetime
import logging
import os

from examples.queue_tasks import Signup, send_welcome, update_crm
from velocipy import BackgroundTasks, VelociPy
from velocipy.tasks import TaskBackend

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

ENGINE = os.environ.get("VELOCIPY_QUEUE", "celery")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "velocipy-example"


def task_backend() -> TaskBackend:
    if ENGINE == "dramatiq":
        from dramatiq.brokers.redis import RedisBroker

        from velocipy.contrib.dramatiq import DramatiqBackend

        return DramatiqBackend(RedisBroker(url=REDIS_URL), queue=QUEUE)
    from celery import Celery

    from velocipy.contrib.celery import CeleryBackend

    return CeleryBackend(Celery("velocipy-example", broker=REDIS_URL), queue=QUEUE)


app = VelociPy(task_backend=task_backend())


@app.post("/signup")
def signup(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    # Exactly what an in-process app writes: only the configuration above differs.
    background_tasks.add_task(send_welcome, Signup(email, datetime.datetime.now()))
    background_tasks.add_task(update_crm, email)
    return {"status": "welcome on its way"}
