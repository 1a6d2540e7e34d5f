"""The Celery worker of the queue tests: `celery -A tests.queues.celery_worker worker`.

It imports no web app: only Celery, the generic task, and (by name, when a batch
arrives) the task functions in `tests.queues.jobs`.
"""

from __future__ import annotations

import os

from celery import Celery

from tests.queues import jobs
from velocipy.contrib.celery import install

BROKER = os.environ["VELOCIPY_TEST_BROKER"]
# On Redis, results are kept there too, so a test can look a task's state up by its id.
celery_app = Celery(
    "velocipy-tests", broker=BROKER, backend=None if BROKER.startswith("amqp") else BROKER
)
celery_app.conf.update(
    task_default_queue=os.environ["VELOCIPY_TEST_QUEUE"],
    # Redis hands an unacknowledged message out again after this many seconds: the
    # default (an hour) is too long for a test of a killed worker.
    # Scan for such messages every second (by default, every 100 s or so).
    broker_transport_options={
        "visibility_timeout": 3,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
# A test of failed forwards sends the worker's own publishing (the forward of a
# request's later tasks) through a TCP proxy to the same Redis, and shuts it.
if os.environ.get("VELOCIPY_TEST_WRITE_BROKER"):
    celery_app.conf.broker_write_url = os.environ["VELOCIPY_TEST_WRITE_BROKER"]
install(
    celery_app,
    # A test of the worker's error hooks names a file for them to write to.
    on_task_error=[jobs.worker_hook] if os.environ.get("VELOCIPY_HOOKS_LOG") else [],
    forward_attempts=int(os.environ.get("VELOCIPY_TEST_FORWARD_ATTEMPTS", "6")),
    forward_backoff=float(os.environ.get("VELOCIPY_TEST_FORWARD_BACKOFF", "0.5")),
)
