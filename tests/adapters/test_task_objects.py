"""What a waiting background task keeps alive on the built-in server: a budget, per task.

Every object the garbage collector tracks that a request in flight keeps alive is
scanned by each collection that reaches it, and a full collection's time grows
faster than their number (`velocipy/adapters/_gc.py`). With a thousand tasks
waiting (1,000 req/s, a 1 s task) those objects set the pauses a p99 sees, so
their count per task is held to a budget here (`bench/task_objects.py` counts
the same thing in a benchmark server, by type).
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.adapters.test_server_harness import PARSERS, Reader, get, serving, using_parser
from velocipy import BackgroundTasks, VelociPy

pytestmark = pytest.mark.server

#: Tracked objects one waiting task (its flow: exchange, drive, task, the sleep) may keep
#: alive, by event loop: 21 on asyncio, 22 on uvloop (whose timer keeps a copy of the
#: context and a timer object of its own), on both parsers. A budget at the count, so
#: that one more object per waiting flow fails here. It was 36 before the exchange let
#: go of its handler-only lists, the task loop lost its enumerate, the core's context
#: wrapper its generator and the server's done callback its copy of the context; 24
#: (asyncio) before the exchange let go of its `BackgroundTasks` once the tasks run and
#: the rest of an eager flow became one object (`_RestOfFlow`) instead of a coroutine
#: awaiting an `InContext`.
BUDGETS = {"asyncio": 21.5, "uvloop": 22.5}


@pytest.fixture(autouse=True, params=PARSERS)
def parser(request: pytest.FixtureRequest) -> Iterator[str]:
    with using_parser(request.param) as http:
        yield http


def _tracked() -> Counter[str]:
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


@pytest.mark.parametrize("loop", sorted(BUDGETS))
def test_a_waiting_task_keeps_few_objects_alive(loop: str) -> None:
    released: list[bool] = []
    app = VelociPy(max_tasks_in_flight=10_000)

    async def wait_for_release() -> None:
        while not released:  # one sleep pending at any time, as a task sleeping 1 s has
            await asyncio.sleep(0.05)

    @app.get("/wait")
    async def wait(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(wait_for_release)
        return {}

    with serving(app, loop=loop) as running, running.connect() as sock:
        reader = Reader(sock)
        try:

            def send(count: int) -> None:
                for _ in range(count):
                    sock.sendall(get("/wait"))
                    assert reader.response().status == 200

            send(20)  # first calls' caches, the connection's own objects
            running.portal.call(_tracked)  # the count's own first-call caches
            before = running.portal.call(_tracked)
            send(200)
            after = running.portal.call(_tracked)
            assert running.server.flows == 220
        finally:
            released.append(True)  # the stop waits for the tasks
    per_task = (after.total() - before.total()) / 200
    after.subtract(before)
    by_type = {kind: count / 200 for kind, count in after.most_common() if count >= 100}
    assert per_task <= BUDGETS[loop], f"{per_task:.1f} tracked objects per waiting task: {by_type}"
