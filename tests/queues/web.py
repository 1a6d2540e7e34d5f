"""The web app of the queue tests, served by a real server subprocess.

Its task backend comes from the environment: `VELOCIPY_TEST_ENGINE` (celery or
dramatiq), `VELOCIPY_TEST_BROKER` (a Redis or an AMQP URL), `VELOCIPY_TEST_QUEUE`, and
`VELOCIPY_TEST_PUBLISH` / `VELOCIPY_TEST_DEADLINE` for the publishing rules.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tests.queues import jobs
from velocipy import BackgroundTasks, VelociPy
from velocipy.tasks import TaskBackend, request_id

ENGINE = os.environ["VELOCIPY_TEST_ENGINE"]
BROKER = os.environ["VELOCIPY_TEST_BROKER"]
QUEUE = os.environ["VELOCIPY_TEST_QUEUE"]
OPTIONS: dict[str, Any] = {
    "publish": os.environ.get("VELOCIPY_TEST_PUBLISH", "after_response"),
    "deadline": float(os.environ.get("VELOCIPY_TEST_DEADLINE", "2")),
}
if OPTIONS["publish"] == "before_response":
    OPTIONS["on_failure"] = "fail"


def make_backend() -> TaskBackend:
    if ENGINE == "celery":
        from celery import Celery

        from velocipy.contrib.celery import CeleryBackend

        celery_app = Celery("velocipy-tests-web", broker=BROKER)
        celery_app.conf.broker_transport_options = (
            # A publish returns once RabbitMQ has confirmed the message.
            {"confirm_publish": True, "connect_timeout": 1}
            if BROKER.startswith("amqp")
            else {"socket_timeout": 1, "socket_connect_timeout": 1}
        )
        return CeleryBackend(celery_app, queue=QUEUE, **OPTIONS)
    from velocipy.contrib.dramatiq import DramatiqBackend

    if BROKER.startswith("amqp"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return DramatiqBackend(RabbitmqBroker(url=BROKER), queue=QUEUE, **OPTIONS)
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=BROKER, namespace=QUEUE, socket_timeout=1)
    return DramatiqBackend(broker, queue=QUEUE, **OPTIONS)


app = VelociPy(task_backend=make_backend())


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # `gunicorn tests.queues.web:wsgi`, built in the worker
        return app.wsgi
    raise AttributeError(name)


@app.post("/signup")
def signup(tasks: BackgroundTasks, n: int = 0) -> dict[str, int]:
    request_id.set(f"req-{n}")
    tasks.add_task(jobs.record, "signup", n)
    return {"n": n}


@app.post("/batch")
async def batch(tasks: BackgroundTasks) -> str:
    tasks.add_task(jobs.record, "first")
    tasks.add_task(jobs.fail, "second")
    tasks.add_task(jobs.async_record, "third")
    return "ok"


@app.post("/ids")
def ids(tasks: BackgroundTasks) -> list[str]:
    # Equal options: the three travel as one batch, forwarded task by task on the worker.
    handles = [
        tasks.add_task(jobs.record_id, "first"),
        tasks.add_task(jobs.fail_id, "second"),
        tasks.add_task(jobs.record_id, "third"),
    ]
    return [handle.id for handle in handles]


@app.post("/delayed")
def delayed(tasks: BackgroundTasks, seconds: float = 2.0) -> str:
    tasks.add_task(jobs.record_id, "first").with_options(delay=seconds)
    tasks.add_task(jobs.record_id, "second").with_options(delay=seconds)
    return "ok"


@app.post("/chain")
def chain(tasks: BackgroundTasks, seconds: float = 3.0) -> str:
    tasks.add_task(jobs.record, "before")
    tasks.add_task(jobs.slow, "slow", seconds)
    tasks.add_task(jobs.record, "after")
    return "ok"


@app.post("/timeout")
def timeout(tasks: BackgroundTasks) -> str:
    tasks.add_task(jobs.fail, "first")
    tasks.add_task(jobs.slow, "slow", 3.0).with_options(timeout=0.5)
    tasks.add_task(jobs.record, "after")
    return "ok"


@app.post("/slow")
def slow(tasks: BackgroundTasks, seconds: float = 4.0) -> str:
    tasks.add_task(jobs.slow, "slow", seconds)
    return "ok"


@app.on_task_error
def report(task: Any, error: BaseException) -> None:
    # The tests read the server's output: say which task the hook saw, and why.
    print(f"HOOK {task.name} {type(error).__name__}", file=sys.stderr, flush=True)
