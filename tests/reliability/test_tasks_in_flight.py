"""The bound on background tasks in flight: backpressure on every server, nothing refused.

Issue 17, defect 7: with no bound, memory grew with every task a process held.
An app with `max_tasks_in_flight=N` stops taking requests while N tasks are
pending or running, and takes them again as tasks finish: the request past the
bound is answered late, never refused, and every task runs.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from tests.adapters.test_server_harness import Reader, post, serving
from velocipy import BackgroundTasks, VelociPy
from velocipy.adapters.wsgi import WSGIAdapter
from velocipy.core._application import DEFAULT_MAX_TASKS_IN_FLIGHT

BOUND = 3


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def bounded_app(release: threading.Event, ran: list[int]) -> VelociPy:
    """Each `POST /work` adds one task that waits (polling, so no loop is blocked) for `release`."""
    app = VelociPy(max_tasks_in_flight=BOUND)

    async def held() -> None:
        while not release.is_set():
            await asyncio.sleep(0.01)
        ran.append(1)

    @app.post("/work")
    async def work(background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(held)
        return "ok"

    return app


def test_there_is_a_default_bound() -> None:
    assert VelociPy().tasks.max_in_flight == DEFAULT_MAX_TASKS_IN_FLIGHT == 1_000
    assert VelociPy(max_tasks_in_flight=None).tasks.has_room()


def test_the_built_in_server_stops_reading_requests_at_the_bound_then_resumes() -> None:
    release, ran = threading.Event(), []
    app = bounded_app(release, ran)
    with serving(app) as running:
        sockets = [running.connect() for _ in range(BOUND + 1)]
        try:
            for sock in sockets[:BOUND]:
                sock.sendall(post("/work", b""))
                assert Reader(sock).response().status == 200
            assert wait_for(lambda: app.tasks.unfinished == BOUND)
            late = sockets[BOUND]
            late.sendall(post("/work", b""))
            late.settimeout(0.5)
            with pytest.raises(TimeoutError):  # not read, let alone refused
                late.recv(1)
            assert app.tasks.unfinished == BOUND
            release.set()
            late.settimeout(5)
            assert Reader(late).response().status == 200
            assert wait_for(lambda: len(ran) == BOUND + 1)
        finally:
            release.set()
            for sock in sockets:
                sock.close()
    assert app.tasks.count("abandoned") == 0


def test_an_asgi_call_waits_for_room_before_it_runs_the_request() -> None:
    release, ran = threading.Event(), []
    app = bounded_app(release, ran)
    statuses: list[int] = []

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/work",
            "raw_path": b"/work",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-length", b"0")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(BOUND):
                group.start_soon(call)
            with anyio.fail_after(5):
                while len(statuses) < BOUND:
                    await anyio.sleep(0.01)
            group.start_soon(call)
            await anyio.sleep(0.5)
            assert len(statuses) == BOUND  # the late call waits; it has not even started
            assert app.tasks.unfinished == BOUND
            release.set()
            with anyio.fail_after(5):
                while len(statuses) < BOUND + 1:
                    await anyio.sleep(0.01)

    try:
        anyio.run(main)
    finally:
        release.set()
    assert statuses == [200] * (BOUND + 1) and len(ran) == BOUND + 1


def test_a_wsgi_server_thread_waits_for_room_before_its_next_request() -> None:
    release, ran = threading.Event(), []
    app = bounded_app(release, ran)
    wsgi = WSGIAdapter(app)
    served: list[str] = []

    def call() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/work",
            "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.url_scheme": "http",
        }
        body = wsgi(environ, lambda status, headers, exc_info=None: served.append(status))
        for _chunk in body:
            pass
        body.close()  # type: ignore[attr-defined]

    try:
        for _ in range(BOUND):
            call()
        assert wait_for(lambda: app.tasks.unfinished == BOUND)
        late = threading.Thread(target=call, daemon=True)
        late.start()
        late.join(0.5)
        assert late.is_alive() and len(served) == BOUND  # waiting, not refused
        release.set()
        late.join(5)
        assert not late.is_alive() and len(served) == BOUND + 1
        assert wait_for(lambda: len(ran) == BOUND + 1)
    finally:
        release.set()
