"""The Dramatiq worker of the queue tests: `dramatiq tests.queues.dramatiq_worker`.

It imports no web app: only Dramatiq, the generic actor, and (by name, when a
batch arrives) the task functions in `tests.queues.jobs`.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

from tests.queues import jobs
from velocipy.contrib.dramatiq import install

# A test of failed forwards sends all the worker's traffic through a TCP proxy to the
# same Redis (Dramatiq has one connection pool for consuming and enqueueing), and shuts it.
URL = os.environ.get("VELOCIPY_TEST_WORKER_BROKER") or os.environ["VELOCIPY_TEST_BROKER"]
broker: dramatiq.Broker
if URL.startswith("amqp"):
    # RabbitMQ hands a killed worker's unacknowledged messages out again at once.
    broker = RabbitmqBroker(url=URL)
else:
    broker = RedisBroker(
        url=URL,
        namespace=os.environ["VELOCIPY_TEST_QUEUE"],
        # A killed worker's messages are handed out again once its heartbeat is this
        # old (milliseconds); the default is a minute, and every command may run the check.
        heartbeat_timeout=3000,
        maintenance_chance=1_000_000,
    )
    # Each message's result (how its task ended) is kept, for `DramatiqBackend.get_state`.
    from dramatiq.results import Results
    from dramatiq.results.backends import RedisBackend

    broker.add_middleware(Results(backend=RedisBackend(url=os.environ["VELOCIPY_TEST_BROKER"])))
# Lets a task see the message it runs in (`tests.queues.jobs.record_id`).
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)
install(
    broker,
    # A test of the worker's error hooks names a file for them to write to.
    on_task_error=[jobs.worker_hook] if os.environ.get("VELOCIPY_HOOKS_LOG") else [],
    queues=[os.environ["VELOCIPY_TEST_QUEUE"]],
    forward_attempts=int(os.environ.get("VELOCIPY_TEST_FORWARD_ATTEMPTS", "6")),
    forward_backoff=float(os.environ.get("VELOCIPY_TEST_FORWARD_BACKOFF", "0.5")),
)
