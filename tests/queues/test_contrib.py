"""The engine backends without a broker: what they hand their engine, and what they refuse."""

from __future__ import annotations

import base64
import json
from typing import Any

import dramatiq
import pytest
import redis
from celery import Celery
from dramatiq.brokers.stub import StubBroker
from dramatiq.results import Results
from dramatiq.results.backends import StubBackend
from kombu import Exchange, Queue

from tests.queues import jobs
from velocipy import BackgroundTasks, VelociPy
from velocipy.contrib.celery import TASK_NAME, CeleryBackend
from velocipy.contrib.dramatiq import ACTOR_NAME, DramatiqBackend, install
from velocipy.tasks import Envelope
from velocipy.testing import TestClient


def envelope(i: int, **options: Any) -> Envelope:
    return Envelope(id=f"id-{i}", task="tests.queues.jobs:record", name="record", **options)


def test_the_redis_fast_path_writes_the_message_celery_send_task_writes(
    redis_url: str, run_id: str
) -> None:
    celery_app = Celery("velocipy-tests-web", broker=redis_url)
    backend = CeleryBackend(celery_app, queue=run_id)
    client = redis.Redis.from_url(redis_url)
    mail, theirs_queue = f"{run_id}-mail", f"{run_id}-celery"
    try:
        backend.publish(
            [
                envelope(1, queue=run_id),
                envelope(2, queue=run_id),
                envelope(3, queue=mail, delay=5.0, priority=6),
            ]
        )
        assert backend._redis  # the template path, not send_task
        [ours] = [json.loads(m) for m in client.lrange(run_id, 0, -1)]
        priority_keys = [k for k in client.keys(f"{mail}*")]
        [delayed] = [json.loads(m) for m in client.lrange(priority_keys[0], 0, -1)]
        # What Celery itself writes for the same batch, to compare field by field.
        batch = [envelope(1, queue=run_id).to_dict(), envelope(2, queue=run_id).to_dict()]
        celery_app.send_task(TASK_NAME, args=[batch], task_id="id-1", queue=theirs_queue)
        [theirs] = [json.loads(m) for m in client.lrange(theirs_queue, 0, -1)]
    finally:
        backend.close()
        client.delete(run_id, theirs_queue, *client.keys(f"{mail}*"))
    assert ours.keys() == theirs.keys()
    assert ours["headers"].keys() == theirs["headers"].keys()
    assert ours["properties"].keys() == theirs["properties"].keys()
    differ = {"origin", "argsrepr", "ignore_result"}  # display text; None and False alike
    assert {k: v for k, v in ours["headers"].items() if k not in differ} == {
        k: v for k, v in theirs["headers"].items() if k not in differ
    }
    assert ours["headers"]["id"] == "id-1" and ours["properties"]["correlation_id"] == "id-1"
    # The body is the same JSON, to the byte: ours as a JSON string, which kombu hands on as
    # it is when the message names no body encoding; Celery's base64-encoded.
    assert theirs["properties"]["body_encoding"] == "base64"
    assert ours["properties"]["body_encoding"] is None
    assert ours["body"].encode() == base64.b64decode(theirs["body"])
    same = {"delivery_mode", "priority", "correlation_id"}
    assert {k: ours["properties"][k] for k in same} == {k: theirs["properties"][k] for k in same}
    assert ours["properties"]["delivery_info"] == {"exchange": "", "routing_key": run_id}
    # The delayed, prioritised run went out as its own message, under its first id.
    assert delayed["headers"]["id"] == "id-3" and delayed["headers"]["eta"]
    assert delayed["properties"]["priority"] == 6
    assert [e["id"] for e in json.loads(delayed["body"])[0][0]] == ["id-3"]


def test_celery_on_another_broker_publishes_through_send_task() -> None:
    celery_app = Celery("velocipy-tests-memory", broker="memory://")
    backend = CeleryBackend(celery_app, queue="web")
    try:
        backend.publish([envelope(1, queue="web"), envelope(2, queue="web")])
        assert not backend._redis
        with celery_app.connection_for_read() as connection:
            message = connection.SimpleQueue("web").get(timeout=5)
    finally:
        backend.close()
    assert message.headers["task"] == TASK_NAME and message.headers["id"] == "id-1"
    args, _, _ = message.decode()
    assert [e["id"] for e in args[0]] == ["id-1", "id-2"]


def test_celery_routes_what_its_fast_path_cannot_as_send_task_would(
    redis_url: str, run_id: str
) -> None:
    # The generic task routed by `task_routes` through a topic exchange to another queue:
    # a write to the named queue's list would put it where Celery would not.
    exchange = Exchange(f"{run_id}-topic", type="topic")
    named, routed = f"{run_id}-named", f"{run_id}-routed"
    celery_app = Celery("velocipy-tests-web", broker=redis_url)
    celery_app.conf.task_queues = [
        Queue(named, exchange, routing_key="web.named"),
        Queue(routed, exchange, routing_key="web.routed"),
    ]
    celery_app.conf.task_routes = {
        TASK_NAME: {"exchange": exchange.name, "routing_key": "web.routed"}
    }
    backend = CeleryBackend(celery_app, queue=named)
    client = redis.Redis.from_url(redis_url)
    try:
        with celery_app.connection_for_write() as connection:  # as its worker would at start
            celery_app.amqp.queues[routed](connection.default_channel).declare()
        backend.publish([envelope(1, queue=named), envelope(2, queue=named)])
        assert backend._redis  # a Redis broker, and still not written by the fast path
        assert client.llen(named) == 0
        [message] = [json.loads(m) for m in client.lrange(routed, 0, -1)]
    finally:
        backend.close()
        client.delete(named, routed, *client.keys(f"_kombu.binding.{run_id}*"))
    assert message["headers"]["id"] == "id-1"
    assert message["properties"]["delivery_info"]["exchange"] == exchange.name


def test_celery_refuses_a_queue_whose_exchange_copies_every_message() -> None:
    celery_app = Celery("velocipy-tests-memory", broker="memory://")
    celery_app.conf.task_queues = [
        Queue("everyone", Exchange("everyone", type="fanout")),
        Queue("web"),
    ]
    with pytest.raises(ValueError, match="'everyone' is routed through the fanout exchange"):
        CeleryBackend(celery_app, queue="everyone")
    backend = CeleryBackend(celery_app, queue="web")
    app = VelociPy(task_backend=backend)

    @app.post("/p")
    def p(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "x").with_options(queue="everyone")
        return "ok"

    try:
        with pytest.raises(ValueError, match="fanout"):
            TestClient(app).post("/p")
    finally:
        backend.close()


def test_dramatiq_enqueues_under_the_first_id_and_refuses_a_priority() -> None:
    broker = StubBroker()
    broker.emit_after("process_boot")
    install(broker, queues=["web"])
    backend = DramatiqBackend(broker, queue="web")
    backend.publish([envelope(1, queue="web"), envelope(2, queue="web")])
    [message] = [broker.queues["web"].get_nowait()]
    assert b'"message_id":"id-1"' in message.replace(b" ", b"")
    assert ACTOR_NAME in broker.actors

    app = VelociPy(task_backend=backend)

    @app.post("/p")
    def p(tasks: BackgroundTasks) -> str:
        tasks.add_task(jobs.record, "x").with_options(priority=1)
        return "ok"

    with pytest.raises(ValueError, match="DramatiqBackend has no per-task priority"):
        TestClient(app).post("/p")


def test_dramatiq_looks_a_tasks_state_up_with_the_results_middleware() -> None:
    broker = StubBroker()
    broker.add_middleware(Results(backend=StubBackend()))
    broker.emit_after("process_boot")
    install(broker, queues=["web", "other"])
    backend = DramatiqBackend(broker, queue="web")
    app = VelociPy(task_backend=backend)

    @app.post("/p")
    def p(tasks: BackgroundTasks) -> list[str]:
        first = tasks.add_task(jobs.record, "a")
        second = tasks.add_task(jobs.fail, "b")
        second.with_options(queue="other")  # its result is kept under that queue
        return [first.id, second.id]

    handles = TestClient(app, record_tasks=False).post("/p").json()
    assert [backend.get_state(h) for h in handles] == [None, None]  # not run yet
    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    try:
        broker.join("web")
        broker.join("other")
        worker.join()
    finally:
        worker.stop()
    assert [backend.get_state(h) for h in handles] == ["succeeded", "failed"]
    assert backend.get_state("no-such-id") is None


def test_dramatiq_state_lookup_without_the_results_middleware_says_what_is_missing() -> None:
    backend = DramatiqBackend(StubBroker(), queue="web")
    with pytest.raises(NotImplementedError, match="Results middleware"):
        backend.get_state("id-1")
