"""An ASGI app that reports what it runs in: its own task, its own context, anyio's scopes.

Each request records what it saw; `GET /report` returns the records, so a test
can check work done after a response from the next request on the same connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

import anyio

#: Set by every request: a value seen by the next request means contexts leak.
SEEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("seen", default=None)

RECORDS: list[dict[str, Any]] = []


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["path"] == "/report":
        await _answer(send, json.dumps(RECORDS).encode())
        return
    record: dict[str, Any] = {"path": scope["path"], "leaked": SEEN.get()}
    RECORDS.append(record)
    SEEN.set(scope["path"])
    task = asyncio.current_task()
    try:
        # A cancel scope entered before the response and left after a real wait:
        # anyio refuses to leave it in another task than the one that entered it.
        with anyio.CancelScope():
            await _answer(send, b"ok")
            await asyncio.sleep(0.05)
            record["same_task"] = asyncio.current_task() is task
            record["own_task"] = task is not None
    except RuntimeError as error:  # pragma: no cover - what the test guards against
        record["error"] = str(error)


async def _answer(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
