"""The Celery worker of the queue tests: `celery -A tests.queues.celery_worker worker`.

It imports no web app: only Celery, the generic task, and (by name, when a batch
arrives) the task functions in `tests.queues.jobs`.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from tests.queues import jobs
from velocipy.contrib.celery import install

BROKER = os.environ["VELOCIPY_TEST_BROKER"]
# On Redis, results are kept there too, so a test can look a task's state up by its id.
# A test of a broker gone for the worker sends all the worker's broker traffic through a
# TCP proxy (`VELOCIPY_TEST_WORKER_BROKER`); its results still go to the broker itself.
celery_app = Celery(
    "velocipy-tests",
    broker=os.environ.get("VELOCIPY_TEST_WORKER_BROKER") or BROKER,
    backend=None if BROKER.startswith("amqp") else BROKER,
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
    forward_deadline=float(os.environ.get("VELOCIPY_TEST_FORWARD_DEADLINE", "10")),
)


@worker_ready.connect
def _notice_stop_signals_promptly(sender: Any, **_: Any) -> None:
    """Wake the worker's event loop five times a second, so SIGTERM stops it at once.

    Celery's handler only sets a flag, which the loop reads between polls; Python
    resumes an interrupted epoll wait after running the handler, and kombu's hub
    waits up to 10 s when no timer is due. On RabbitMQ nothing else wakes it, so every
    test's worker took ~11 s to stop (2.7 s on Redis, whose transport polls each second).
    """
    hub = sender.controller.hub
    if hub is not None:  # None for pools without an event loop
        hub.call_repeatedly(0.2, _stay_awake)


def _stay_awake() -> None:
    """Nothing to do: the wake-up is the point."""
