"""What every benchmark app shares: the background task, the dependency, and the expected answers.

`BENCH_TASK_SLEEP` (seconds, default 0) makes the signup task sleep before it
records, for the latency-under-tasks measurement.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

#: How long the signup background task sleeps (0 = it only appends).
TASK_SLEEP = float(os.environ.get("BENCH_TASK_SLEEP", "0") or 0)

#: What the signup tasks append to; trimmed so a long run does not grow memory without bound.
SIGNUPS: list[str] = []
_KEEP = 10_000

#: The owner the `/items` dependency provides.
OWNER = "bench"


def record_signup(email: str) -> None:
    """The signup background task, sync flavour (WSGI apps)."""
    if TASK_SLEEP:
        time.sleep(TASK_SLEEP)
    if len(SIGNUPS) >= _KEEP:
        SIGNUPS.clear()
    SIGNUPS.append(email)


async def record_signup_async(email: str) -> None:
    """The signup background task, async flavour (ASGI apps)."""
    if TASK_SLEEP:
        await asyncio.sleep(TASK_SLEEP)
    if len(SIGNUPS) >= _KEEP:
        SIGNUPS.clear()
    SIGNUPS.append(email)


def current_owner() -> str:
    """The one dependency of `GET /items/{item_id}` (WSGI apps; frameworks without DI call it)."""
    return OWNER


async def current_owner_async() -> str:
    """The same dependency for ASGI apps with dependency injection.

    Async so that FastAPI and VelociPy call it on the event loop, as the
    frameworks without injection call `current_owner` directly: a sync
    dependency would cost them a worker-thread round trip the others never pay.
    """
    return OWNER


def valid_signup(data: Any) -> bool:
    """The validation frameworks without a schema layer do by hand: two string fields."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("email"), str)
        and isinstance(data.get("name"), str)
    )
