"""ASGI apps with each kind of lifespan: failing at startup, not supporting it, saying nothing."""

from __future__ import annotations

from typing import Any


async def _hello(send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


async def failing(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database at db:5432"})
        return
    await _hello(send)


async def unsupported(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise ValueError(f"only http, not {scope['type']}")
    await _hello(send)


async def silent(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    await _hello(send)
