"""A VelociPy app wrapped in third-party ASGI middleware (Starlette's) still behaves.

Middleware wraps `send`, so these check that the response survives the
wrapping and that the tasks still run once the wrapped response is out.
"""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from velocipy import BackgroundTasks, PlainTextResponse, VelociPy

pytestmark = pytest.mark.anyio

app = VelociPy()
DONE: list[str] = []
TEXT = "VelociPy " * 500


@app.get("/big")
async def big(background_tasks: BackgroundTasks) -> PlainTextResponse:
    background_tasks.add_task(DONE.append, "big")
    return PlainTextResponse(TEXT)


@app.get("/data")
def data(background_tasks: BackgroundTasks) -> dict[str, Any]:
    background_tasks.add_task(DONE.append, "data")
    return {"ok": True}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def client(asgi_app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app), base_url="http://t")


async def test_gzip_middleware_compresses_and_tasks_still_run() -> None:
    DONE.clear()
    async with client(GZipMiddleware(app, minimum_size=500)) as http:
        response = await http.get("/big", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < len(TEXT) // 10
    assert response.text == TEXT  # httpx decompressed it
    assert DONE == ["big"]


async def test_gzip_middleware_leaves_small_bodies_alone() -> None:
    DONE.clear()
    async with client(GZipMiddleware(app, minimum_size=500)) as http:
        response = await http.get("/data", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.json() == {"ok": True}
    assert DONE == ["data"]


async def test_cors_middleware_answers_preflight_and_decorates_responses() -> None:
    DONE.clear()
    cors = CORSMiddleware(app, allow_origins=["https://ui.example"], allow_methods=["GET"])
    async with client(cors) as http:
        preflight = await http.options(
            "/data",
            headers={
                "origin": "https://ui.example",
                "access-control-request-method": "GET",
            },
        )
        response = await http.get("/data", headers={"origin": "https://ui.example"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
    assert response.json() == {"ok": True}
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    assert DONE == ["data"]  # the preflight never reached the app


def test_the_raw_gzip_bytes_are_what_the_app_sent() -> None:
    # Guard against httpx hiding a double encoding: decompress by hand once.
    import anyio

    async def fetch() -> bytes:
        transport = httpx.ASGITransport(app=GZipMiddleware(app, minimum_size=500))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            async with http.stream("GET", "/big", headers={"accept-encoding": "gzip"}) as r:
                return b"".join([chunk async for chunk in r.aiter_raw()])

    assert gzip.decompress(anyio.run(fetch)).decode() == TEXT
