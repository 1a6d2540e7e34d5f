"""The worker of `examples.queue_app` (see its docstring for the commands).

It imports the engine and VelociPy's generic task, never the web app: each
batch names its task functions (in `examples.queue_tasks`), imported on arrival.
"""

from __future__ import annotations

import logging
import os

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

ENGINE = os.environ.get("VELOCIPY_QUEUE", "celery")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = "velocipy-example"

if ENGINE == "dramatiq":
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    from velocipy.contrib.dramatiq import install as install_dramatiq

    broker = RedisBroker(url=REDIS_URL)
    dramatiq.set_broker(broker)
    install_dramatiq(broker, queues=[QUEUE])
else:
    from celery import Celery

    from velocipy.contrib.celery import install as install_celery

    celery_app = Celery("velocipy-example", broker=REDIS_URL)
    celery_app.conf.worker_prefetch_multiplier = 1
    install_celery(celery_app)
