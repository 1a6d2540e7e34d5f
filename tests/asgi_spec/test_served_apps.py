"""Real ASGI apps on `velocipy run` (both parsers), uvicorn beside them as the reference:
a Starlette app, and a VelociPy app inside OpenTelemetry's and a Sentry-like ASGI middleware."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.asgi_spec.conftest import serving

SERVERS = ("velocipy-h11", "velocipy-httptools", "uvicorn-h11")


def poll(client: httpx.Client, path: str, done: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = client.get(path).json()
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture(scope="module", params=SERVERS)
def starlette(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    pytest.importorskip("starlette")
    with (
        serving(request.param, "tests.asgi_spec.starlette_app:app") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def test_a_starlette_app_is_served_with_its_lifespan_state(starlette: httpx.Client) -> None:
    answer = starlette.get("/items/7", params={"q": "x"})
    assert answer.json() == {"id": 7, "q": "x", "greeting": "hello from the lifespan"}
    assert starlette.post("/echo", content=b"abc").text == "cba"
    assert starlette.get("/stream").text == "0\n1\n2\n3\n4\n"
    assert starlette.get("/nowhere").status_code == 404


def test_a_starlette_background_task_runs_after_the_response(starlette: httpx.Client) -> None:
    began = time.monotonic()
    assert starlette.post("/task", params={"name": "first"}).text == "queued"
    assert time.monotonic() - began < 0.45  # the task sleeps 0.5 s after the response
    assert poll(starlette, "/done", lambda done: "first" in done) == ["first"]


@pytest.fixture(scope="module", params=SERVERS)
def wrapped(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    pytest.importorskip("opentelemetry.instrumentation.asgi")
    with (
        serving(request.param, "tests.asgi_spec.velocipy_app:app") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        yield client


def test_asgi_middleware_wraps_a_velocipy_app_on_every_server(wrapped: httpx.Client) -> None:
    hello = wrapped.get("/hello/ann")
    assert hello.json() == {"hello": "ann"}
    assert hello.headers["x-environment"] == "test"  # the middleware changed the response
    assert wrapped.post("/echo", json={"a": [1, 2]}).json() == {"a": [1, 2]}
    assert wrapped.get("/boom").status_code == 500
    assert wrapped.get("/nowhere").status_code == 404

    seen = poll(wrapped, "/_seen", lambda seen: len(seen["transactions"]) >= 4)
    # Each call ends once its background work has run, so not always in request order.
    # OpenTelemetry: one server span per request, with its status.
    assert sorted(status for _, status in seen["spans"][:4]) == [200, 200, 404, 500]
    # The Sentry-like middleware saw every request and its status; VelociPy answered the
    # failing handler with a 500 itself, so nothing escaped for it to capture.
    assert sorted(seen["transactions"][:4]) == [
        ["/boom", 500],
        ["/echo", 200],
        ["/hello/ann", 200],
        ["/nowhere", 404],
    ]
    assert seen["captured"] == []
    assert seen["tasks"] == ["ann"]  # the background task ran, behind the middleware too
