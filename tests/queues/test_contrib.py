"""The engine backends without a broker: what they hand their engine, and what they refuse."""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq.brokers.stub import StubBroker

from tests.queues import jobs
from velocipy import BackgroundTasks, VelociPy
from velocipy.contrib.celery import TASK_NAME, CeleryBackend
from velocipy.contrib.dramatiq import ACTOR_NAME, DramatiqBackend, install
from velocipy.tasks import Envelope
from velocipy.testing import TestClient


class FakeCelery:
    """Records `send_task` calls the way `Celery.send_task` takes them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, **options: Any) -> None:
        self.sent.append((name, options))


def envelope(i: int, **options: Any) -> Envelope:
    return Envelope(id=f"id-{i}", task="tests.queues.jobs:record", name="record", **options)


def test_celery_gets_one_message_per_run_of_equal_options_under_the_first_id() -> None:
    celery = FakeCelery()
    backend = CeleryBackend(celery, queue="web")  # type: ignore[arg-type]
    backend.publish(
        [envelope(1, queue="web"), envelope(2, queue="web"), envelope(3, queue="mail", delay=5.0)]
    )
    (name, first), (_, second) = celery.sent
    assert name == TASK_NAME
    assert first["task_id"] == "id-1" and first["queue"] == "web"
    assert [e["id"] for e in first["args"][0]] == ["id-1", "id-2"]
    assert second["task_id"] == "id-3" and second["countdown"] == 5.0
    assert first["retry"] is True and first["retry_policy"]["max_retries"] == 2


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
