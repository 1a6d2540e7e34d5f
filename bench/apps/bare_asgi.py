"""The ASGI baseline: a hand-written ASGI 3 callable doing the scenarios' work and nothing more."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from bench.apps._common import current_owner, record_signup_async, valid_signup

_JSON_HEADERS = [(b"content-type", b"application/json")]


def _start(status: int, body: bytes) -> dict[str, Any]:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body", False):
            return body


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    method, path = scope["method"], scope["path"]
    task_email = None
    status = 200
    if path == "/hello" and method == "GET":
        payload: Any = {"message": "hello"}
    elif path == "/signup" and method == "POST":
        try:
            data = json.loads(await _read_body(receive))
        except ValueError:
            data = None
        if valid_signup(data):
            payload = {"status": "ok", "email": data["email"]}
            task_email = data["email"]
        else:
            status, payload = 422, {"detail": "invalid body"}
    elif path.startswith("/items/") and method == "GET":
        try:
            item_id = int(path[len("/items/") :])
        except ValueError:
            status, payload = 422, {"detail": "item_id must be an integer"}
        else:
            q = parse_qs(scope["query_string"].decode("latin-1")).get("q", [None])[0]
            payload = {"item_id": item_id, "q": q, "owner": current_owner()}
    else:
        status, payload = 404, {"detail": "Not Found"}
    body = json.dumps(payload).encode()
    await send(_start(status, body))
    await send({"type": "http.response.body", "body": body})
    if task_email is not None:
        await record_signup_async(task_email)
