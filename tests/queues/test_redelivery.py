"""Dramatiq's generic actor delivers a message whose forward failed again, then gives up.

A real Dramatiq worker, in this process, on Dramatiq's in-memory broker: the broker
itself refuses the forward (its queue was never declared), so the actor's own
redelivery is what keeps the rest; after `redeliveries` it fails the message, and the
rest is in the dead-letter queue, named in the log. The broker's being away is
`tests/queues/test_forward.py`'s, with Redis and a worker subprocess.
"""

from __future__ import annotations

import logging
import time

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.results import Results
from dramatiq.results.backends import StubBackend

from tests.queues import jobs
from velocipy.contrib import dramatiq as contrib
from velocipy.contrib.dramatiq import ACTOR_NAME, DramatiqBackend, install
from velocipy.tasks import Envelope


def test_a_refused_forward_redelivers_the_message_then_dead_letters_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(contrib, "_REDELIVERY_BACKOFF_MS", 1)
    broker = StubBroker()
    broker.add_middleware(Results(backend=StubBackend()))
    broker.emit_after("process_boot")
    install(broker, queues=["web"], forward_attempts=1, redeliveries=2)
    first = Envelope(
        id="id-1", task="tests.queues.jobs:record", name="record", args=["redelivered-first"]
    )
    # The broker refuses its queue: the forward of this task fails every time.
    second = Envelope(
        id="id-2",
        task="tests.queues.jobs:record",
        name="record",
        args=["redelivered-second"],
        queue="gone",
    )
    batch = [first.to_dict(), second.to_dict()]
    message: dramatiq.Message[None] = dramatiq.Message(
        queue_name="web",
        actor_name=ACTOR_NAME,
        args=(batch,),
        kwargs={},
        options={},
        message_id="id-1",
    )
    worker = dramatiq.Worker(broker, worker_timeout=50)
    with caplog.at_level(logging.INFO):
        broker.enqueue(message)
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while not broker.dead_letters and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            worker.stop()
    # Delivered twice again: the task ran three times, never the second. (Other tests'
    # timed-out tasks may still be writing to RUNS: only this test's labels count.)
    labels = [run.get("label", "") for run in jobs.RUNS]
    labels = [label for label in labels if label.startswith("redelivered-")]
    assert labels == ["redelivered-first"] * 3
    [dead] = broker.dead_letters
    assert dead.message_id == "id-1" and dead.args == (batch,)
    assert dead.options["velocipy_redelivered"] == 2
    assert "enqueued the Dramatiq message id-1 again (delivery 1" in caplog.text
    assert "enqueued the Dramatiq message id-1 again (delivery 2" in caplog.text
    assert "giving up the Dramatiq message id-1 after 2 redeliveries" in caplog.text
    assert "tests.queues.jobs:record [id-2]" in caplog.text
    # How the message ended, for the web process: failed (not a task's "succeeded").
    assert DramatiqBackend(broker, queue="web").get_state("id-1") == "failed"
