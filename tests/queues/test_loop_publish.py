"""Publishing from the event loop itself (`CeleryBackend` on plain-TCP Redis): no thread.

Against real redis-servers: the batch is pushed once, by the loop's own connection
(the thread only sends the first batch for a queue, which declares it); a stopped
broker ends the wait at the deadline without blocking the loop, and the next batch
after it resumes goes through on a fresh connection; a broker that is down for the
first attempt is reached by the retry; batches from many callers share a round trip.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import time
import weakref
from collections.abc import Sequence
from typing import Any

import pytest
import redis
import redis.exceptions
import uvloop
from celery import Celery

from tests.queues.conftest import start_redis
from tests.support.servers import free_port
from velocipy.contrib.celery import CeleryBackend
from velocipy.core._errors import TaskTimedOut
from velocipy.core._queue import Settlement
from velocipy.tasks import Envelope, Pending


def envelope(i: int, queue: str) -> Envelope:
    return Envelope(id=f"id-{i}", task="tests.queues.jobs:record", name="record", queue=queue)


def ids(client: redis.Redis, queue: str) -> list[str]:
    """The first envelope id of each message in `queue`, oldest first."""
    messages = [json.loads(m) for m in reversed(client.lrange(queue, 0, -1))]
    return [json.loads(m["body"])[0][0][0]["id"] for m in messages]


def counting_thread(backend: CeleryBackend) -> list[int]:
    """How many batches each of the publishing thread's round trips carried."""
    rounds: list[int] = []
    send = backend.publisher._send

    def counted(pendings: Sequence[Pending]) -> None:
        rounds.append(len(pendings))
        send(pendings)

    backend.publisher._send = counted
    return rounds


async def warm(backend: CeleryBackend, queue: str) -> None:
    """The first publish, through the thread (Celery's client set up, the queue declared):
    tried until it fits in the deadline, which a loaded machine may not allow at once."""
    for _ in range(40):
        try:
            await backend.apublish([envelope(0, queue)])
            return
        except TaskTimedOut:
            pass
    raise AssertionError("no first publish within the deadline")


async def ticks_while(coroutine: Any) -> tuple[Any, int, float]:
    """Await `coroutine` while a ticker runs on the loop: (its result or error, the
    ticks seen, the seconds it took). Ticks stop if the loop is ever blocked."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        result: Any = await coroutine
    except Exception as error:
        result = error
    elapsed = time.monotonic() - started
    stop.set()
    await task
    return result, ticks, elapsed


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_after_the_first_batch_the_loop_pushes_itself_once_per_batch(
    loop: str, redis_url: str, run_id: str
) -> None:
    backend = CeleryBackend(Celery("velocipy-tests-web", broker=redis_url), queue=run_id)
    rounds = counting_thread(backend)
    client = redis.Redis.from_url(redis_url)

    async def main() -> None:
        await backend.apublish([envelope(0, run_id)])  # the thread: declares the queue
        # Many callers in one pass of the loop: one round trip on the loop's connection.
        await asyncio.gather(*(backend.apublish([envelope(i, run_id)]) for i in range(1, 6)))
        await backend.apublish([envelope(6, run_id)])

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main())
        assert rounds == [1]  # only the first batch went through the thread
        assert ids(client, run_id) == [f"id-{i}" for i in range(7)]  # each once, in order
    finally:
        backend.close()
        client.delete(run_id)


def test_a_stopped_broker_ends_the_wait_at_the_deadline_and_the_loop_runs_on() -> None:
    with start_redis() as server:
        assert server.process is not None
        backend = CeleryBackend(
            Celery("velocipy-tests-web", broker=server.url(0)), queue="q", deadline=0.5
        )
        client = redis.Redis(port=server.port)

        async def main() -> tuple[Any, int, float]:
            await warm(backend, "q")
            await backend.apublish([envelope(1, "q")])  # the loop's connection is up
            server.process.send_signal(signal.SIGSTOP)
            try:
                stalled = await ticks_while(backend.apublish([envelope(2, "q")]))
            finally:
                server.process.send_signal(signal.SIGCONT)
            await asyncio.sleep(0.1)
            await backend.apublish([envelope(3, "q")])  # a fresh connection, at once
            return stalled

        try:
            error, ticks, elapsed = asyncio.run(main())
        finally:
            backend.close()
        assert isinstance(error, TaskTimedOut), error
        assert 0.45 < elapsed < 1.0, elapsed
        assert ticks > 20  # the loop was never held (a tick is 10 ms)
        # The stalled batch may have reached Redis (at least once); the next one did.
        pushed = ids(client, "q")
        assert pushed.count("id-1") == 1 and pushed.count("id-3") == 1


def test_a_broker_down_fails_after_the_retries_and_a_retry_reaches_it_once_back() -> None:
    port = free_port()
    backend = CeleryBackend(
        Celery("velocipy-tests-web", broker=f"redis://127.0.0.1:{port}/0"), queue="q", deadline=5
    )
    rounds = counting_thread(backend)

    async def main() -> tuple[Any, Any, list[str]]:
        with start_redis(port):
            await backend.apublish([envelope(0, "q")])
            await backend.apublish([envelope(1, "q")])
        await asyncio.sleep(0.1)  # the loop has seen its connection closed
        backend.publisher._backoff = 0.01
        down = await ticks_while(backend.apublish([envelope(2, "q")]))
        backend.publisher._backoff = 0.5  # attempts at 0 s, 0.5 s, 1.5 s
        publishing = asyncio.ensure_future(ticks_while(backend.apublish([envelope(3, "q")])))
        await asyncio.sleep(0.2)  # its first attempt was refused
        assert not publishing.done()
        with start_redis(port):
            back = await publishing
            pushed = ids(redis.Redis(port=port), "q")
        return down, back, pushed

    try:
        down, back, pushed = asyncio.run(main())
    finally:
        backend.close()
    error, _, elapsed = down
    assert isinstance(error, (OSError, redis.exceptions.ConnectionError)), error
    assert elapsed < 1.0  # three refusals, not the deadline
    result, ticks, elapsed = back
    assert result is None and 0.4 < elapsed < 5, (result, elapsed)
    assert pushed == ["id-3"]  # the new server got the retried batch, once
    assert rounds == [1]  # every attempt after the first batch was the loop's own


def test_a_batch_answered_on_the_loop_is_let_go_of_before_its_deadline(
    redis_url: str, run_id: str
) -> None:
    # The loop's round trip answered: the publisher keeps nothing of its callers (held
    # until their deadline, thousands of requests' tasks outlived the young generation).
    backend = CeleryBackend(
        Celery("velocipy-tests-web", broker=redis_url), queue=run_id, deadline=30.0
    )
    client = redis.Redis.from_url(redis_url)
    rounds = counting_thread(backend)

    class Watched(Settlement):
        def published(self) -> None:
            answered.set()

    answered = asyncio.Event()

    async def main() -> weakref.ref[Settlement]:
        await warm(backend, run_id)
        settlement = Watched(backend, [], "POST /signup", ())
        held = weakref.ref(settlement)
        assert backend.detach([envelope(1, run_id)], settlement)
        del settlement
        await asyncio.wait_for(answered.wait(), 10)
        return held

    gc.disable()  # freed by its count of references, not by a collection
    try:
        held = asyncio.run(main())
        assert held() is None
        assert [len(watch._queue) for watch in backend.publisher._watches.values()] == [0]
        assert rounds == [1]  # the warm-up alone went through the thread
        assert ids(client, run_id) == ["id-0", "id-1"]
    finally:
        gc.enable()
        backend.close()
        client.delete(run_id)
