"""The ASGI adapter's minimum body rate: bodies that come in several messages (issue 17).

The server reads the socket under ASGI; the adapter sees the body's messages
as they come and measures those, as the built-in server measures its reads.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import anyio
import pytest

from velocipy import File, Request, UploadFile, VelociPy
from velocipy.adapters.asgi import ASGIAdapter

app = VelociPy()


@app.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"length": len(await request.body())}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()]) -> dict[str, int]:
    return {"size": len(await file.read())}


def scope_for(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def call(
    path: str,
    pieces: list[bytes],
    pause: float,
    headers: list[tuple[bytes, bytes]],
    stall: bool = False,
) -> tuple[int, list[tuple[bytes, bytes]], float]:
    """Send `pieces` as body messages `pause` seconds apart; with `stall`, the last one
    says more is coming, and nothing more comes."""
    adapter = ASGIAdapter(app, min_body_rate=100, body_rate_window=0.3)
    sent: list[dict[str, Any]] = []
    queue = list(pieces)

    async def receive() -> dict[str, Any]:
        if not queue:
            await anyio.sleep_forever()
        piece = queue.pop(0)
        if len(sent) or len(queue) < len(pieces) - 1:
            await anyio.sleep(pause)
        return {"type": "http.request", "body": piece, "more_body": bool(queue) or stall}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> float:
        started = time.monotonic()
        with anyio.fail_after(10):
            await adapter(scope_for(path, headers), receive, send)
        return time.monotonic() - started

    took = anyio.run(main)
    start = sent[0]
    return start["status"], list(start["headers"]), took


def test_a_body_trickled_below_the_rate_gets_408_and_close() -> None:
    status, headers, took = call("/echo", [b"x"] * 100, 0.05, [(b"content-length", b"100")])
    assert status == 408 and (b"connection", b"close") in headers
    assert took < 2


def test_a_body_that_stalls_for_a_window_gets_408() -> None:
    # Two pieces of a 1,000-byte body, then nothing: uvicorn itself would wait for ever.
    status, headers, took = call(
        "/echo", [b"x" * 10, b"x" * 10], 0.0, [(b"content-length", b"1000")], stall=True
    )
    assert status == 408 and (b"connection", b"close") in headers
    assert took < 2


def test_a_body_in_small_pieces_above_the_rate_is_read() -> None:
    status, _, _ = call("/echo", [b"y" * 50] * 12, 0.05, [(b"content-length", b"600")])
    assert status == 200


def test_an_upload_trickled_below_the_rate_gets_408() -> None:
    head = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    headers = [
        (b"content-type", b"multipart/form-data; boundary=XX"),
        (b"content-length", b"5000"),
    ]
    status, headers, took = call("/upload", [head] + [b"x"] * 200, 0.05, headers)
    assert status == 408 and (b"connection", b"close") in headers
    assert took < 2


def test_the_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        ASGIAdapter(app, min_body_rate=-1)
    with pytest.raises(ValueError):
        ASGIAdapter(app, body_rate_window=0)
