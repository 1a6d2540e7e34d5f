"""A raw ASGI 3 app exercising the spec, served by `velocipy run` and by uvicorn in the tests.

Each path is one behaviour; what the app saw afterwards (messages received after
its response, work done later) is recorded in `LOG` and read back with
`GET /_log/{key}`.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

LOG: dict[str, list[Any]] = defaultdict(list)


async def _json(send: Any, value: Any, status: int = 200) -> None:
    body = json.dumps(value).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Any, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    assert scope["type"] == "http"
    path = scope["path"].removeprefix(scope["root_path"])
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
    }

    if path.startswith("/_log/"):
        await _json(send, LOG[path[len("/_log/") :]])
    elif path.startswith("/scope"):
        shown = {
            key: value
            for key, value in scope.items()
            if key in ("type", "asgi", "http_version", "method", "scheme", "path", "root_path")
        }
        shown["raw_path"] = scope["raw_path"].decode("latin-1")
        shown["query_string"] = scope["query_string"].decode("latin-1")
        shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        shown["client"] = list(scope["client"])
        shown["server"] = list(scope["server"])
        shown["state"] = dict(scope["state"])
        shown["state_key"] = "state" in scope
        scope["state"]["touched"] = True  # a copy: the next request must not see it
        await _json(send, shown)
    elif path == "/echo":
        messages = []
        size = 0
        while True:
            message = await receive()
            messages.append(
                [message["type"], len(message.get("body", b"")), message.get("more_body", False)]
            )
            size += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        await _json(send, {"size": size, "messages": messages})
    elif path == "/stream":
        await send(start)
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/length":
        await send({**start, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"01234", "more_body": True})
        await send({"type": "http.response.body", "body": b"56789"})
    elif path == "/raise-before":
        raise RuntimeError("failed before the response")
    elif path == "/raise-after":
        await send(start)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("failed mid-response")
    elif path == "/no-response":
        return
    elif path == "/body-first":
        await send({"type": "http.response.body", "body": b"too early"})
    elif path == "/after":
        await send(start)
        await send({"type": "http.response.body", "body": b"done"})
        message = await asyncio.wait_for(receive(), 5)
        LOG["after"].append(message["type"])
    elif path == "/wait-disconnect":
        await receive()  # the (empty) request
        await send(start)
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        message = await asyncio.wait_for(receive(), 10)
        LOG["wait-disconnect"].append(message["type"])
    elif path == "/background":
        await send(start)
        await send({"type": "http.response.body", "body": b"sent"})
        LOG["background"].append("response sent")
        await asyncio.sleep(1.0)
        LOG["background"].append("work done")
        print("background work done", flush=True)  # for the drain test, which reads the log
    elif path == "/early":
        await send(start)  # answers without reading the body
        await send({"type": "http.response.body", "body": b"early"})
    else:
        await _json(send, {"detail": "Not Found"}, 404)
