"""The publishing thread: many callers' batches in one send, each caller's own deadline
and outcome, retries of connection errors, and nothing sent for a caller that gave up."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import anyio
import pytest

from velocipy.core import TaskTimedOut
from velocipy.tasks import Envelope
from velocipy.tasks._publisher import BatchPublisher, Pending


def batch(label: str) -> list[Envelope]:
    return [Envelope(id=label, task="tests.queues.jobs:record", name="record")]


class Recorder:
    """A `send` that records each call's batches; it can hold, fail or fail once."""

    def __init__(self) -> None:
        self.sends: list[list[str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.fail: list[BaseException] = []

    def __call__(self, pendings: Sequence[Pending]) -> None:
        self.entered.set()
        self.hold.wait(10)
        if self.fail:
            raise self.fail.pop(0)
        self.sends.append([pending.envelopes[0].id for pending in pendings])


def test_batches_queued_during_a_round_trip_go_together_in_the_next() -> None:
    send = Recorder()
    publisher = BatchPublisher(send)
    send.hold.clear()

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(publisher.apublish, batch("first"), 5.0)
            await anyio.to_thread.run_sync(send.entered.wait, 5)
            for n in range(20):  # queued while the first send is on the wire
                group.start_soon(publisher.apublish, batch(f"b{n}"), 5.0)
            await anyio.sleep(0.2)
            send.hold.set()

    anyio.run(main)
    publisher.close()
    assert send.sends == [["first"], [f"b{n}" for n in range(20)]]


def test_a_caller_stops_waiting_at_its_deadline_and_what_it_queued_is_not_sent() -> None:
    send = Recorder()
    publisher = BatchPublisher(send)
    send.hold.clear()

    async def main() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(publisher.apublish, batch("held"), 5.0)
            await anyio.to_thread.run_sync(send.entered.wait, 5)
            started = time.monotonic()
            with pytest.raises(TaskTimedOut):
                await publisher.apublish(batch("late"), 0.3)
            assert time.monotonic() - started < 2
            send.hold.set()

    anyio.run(main)
    publisher.close()
    assert send.sends == [["held"]]  # "late" gave up before the thread took it


def test_each_caller_gets_the_error_and_connection_errors_are_retried() -> None:
    send = Recorder()
    publisher = BatchPublisher(send, retryable=(ConnectionError,), retries=1, backoff=0.01)
    send.fail = [ConnectionError("blip")]
    publisher.publish(batch("retried"), 5.0)
    assert send.sends == [["retried"]]
    send.fail = [ConnectionError("down"), ConnectionError("still down")]
    with pytest.raises(ConnectionError, match="still down"):
        publisher.publish(batch("lost"), 5.0)
    send.fail = [RuntimeError("bug")]

    async def main() -> None:
        with pytest.raises(RuntimeError, match="bug"):
            await publisher.apublish(batch("once"), 5.0)

    anyio.run(main)
    publisher.close()
    assert send.sends == [["retried"]]


def test_callers_on_threads_and_on_trio_are_answered_too() -> None:
    send = Recorder()
    publisher = BatchPublisher(send)
    threads = [
        threading.Thread(target=publisher.publish, args=(batch(f"t{n}"), 5.0)) for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    anyio.run(publisher.apublish, batch("trio"), 5.0, backend="trio")
    publisher.close()
    sent = [label for labels in send.sends for label in labels]
    assert sorted(sent) == sorted([f"t{n}" for n in range(8)] + ["trio"])
