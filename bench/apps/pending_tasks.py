"""An app whose background tasks wait until released: tasks in flight, for memory runs.

`POST /signup` schedules one async task that waits on an event; SIGUSR1 sets it
(every waiting task, and every later one, then finishes at once: a signal, since
a server applying backpressure reads no request); `GET /tasks` reports the app's
task counts. Served by `bench/tasks_in_flight.py`.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from velocipy import BackgroundTasks, VelociPy

app = VelociPy()
_released: asyncio.Event | None = None


def _event() -> asyncio.Event:
    global _released
    if _released is None:
        _released = asyncio.Event()
    return _released


async def wait_for_release(address: str) -> None:
    await _event().wait()


@app.post("/signup")
async def signup(data: dict[str, Any], background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(wait_for_release, data.get("email", ""))
    return {"status": "ok"}


@app.on_event("startup")
async def release_on_sigusr1() -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _event().set)


@app.get("/tasks")
def tasks() -> dict[str, Any]:
    return app.tasks.snapshot()
