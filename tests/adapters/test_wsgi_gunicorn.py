"""The WSGI adapter under real gunicorn subprocesses: tasks free the worker, stops drain them.

This module is also the app gunicorn serves (`tests.adapters.test_wsgi_gunicorn:wsgi`):
its tasks print what they do, so a test can read it from the server's output even
after the server has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.drivers.gunicorn_sync import gunicorn_process
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server
from velocipy import BackgroundTasks, VelociPy
from velocipy.adapters.wsgi import WSGIAdapter

app = VelociPy()


def step(name: str, sleep: float = 0.0) -> None:
    print(f"task started: {name}", flush=True)
    time.sleep(sleep)
    print(f"task done: {name}", flush=True)


async def step_async(name: str, sleep: float = 0.0) -> None:
    print(f"task started: {name}", flush=True)
    await asyncio.sleep(sleep)
    print(f"task done: {name}", flush=True)


@app.post("/work")
def work(
    names: str, background_tasks: BackgroundTasks, sleep: float = 0.0, kind: str = "mixed"
) -> dict[str, int]:
    """Schedule `names` (comma-separated); the first sleeps `sleep` seconds. With
    kind "mixed" odd ones are async (a runner thread drives them), with "async" all
    are (they live on the event loop)."""
    for index, name in enumerate(names.split(",")):
        pause = sleep if index == 0 else 0.0
        if kind == "async" or index % 2:
            background_tasks.add_task(step_async, name, pause)
        else:
            background_tasks.add_task(step, name, pause)
    return {"scheduled": len(names.split(","))}


@app.get("/hello")
def hello() -> dict[str, str]:
    return {"message": "hello"}


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # built on first use, in the gunicorn worker
        return app.wsgi
    if name == "tiny_wsgi":  # one runner thread, one waiting request: the full-queue policy
        return WSGIAdapter(app, task_threads=1, task_queue_size=1)
    raise AttributeError(name)


pytestmark = pytest.mark.server

TARGET = "tests.adapters.test_wsgi_gunicorn:wsgi"
STEP = "tests.adapters.test_wsgi_gunicorn.step"
STEP_ASYNC = "tests.adapters.test_wsgi_gunicorn.step_async"


def wait_for_output(server: ServerProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in server.logs():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never appeared in:\n{server.logs()}")
        time.sleep(0.02)
    return server.logs()


def timed(connection: http.client.HTTPConnection, method: str, path: str) -> tuple[int, float]:
    """Send one request on `connection`, read the whole response; (status, seconds taken)."""
    started = time.monotonic()
    connection.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
    response = connection.getresponse()
    response.read()
    return response.status, time.monotonic() - started


@contextlib.contextmanager
def connection_to(server: ServerProcess) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        yield connection
    finally:
        connection.close()


def test_gthread_answers_the_next_request_on_the_same_connection_at_once() -> None:
    with gunicorn_process(TARGET, "gthread") as server, connection_to(server) as connection:
        assert timed(connection, "GET", "/hello")[0] == 200  # the worker has booted
        status, took = timed(connection, "POST", "/work?names=slow,after&sleep=1.5")
        assert status == 200 and took < 0.5, f"the response waited {took:.2f}s"
        socket_used = connection.sock
        status, took = timed(connection, "GET", "/hello")
        assert status == 200 and took < 0.5, f"the next request waited {took:.2f}s"
        assert connection.sock is socket_used  # the same keep-alive connection
        # On a loaded machine the runner thread may not have printed yet: wait for it.
        logs = wait_for_output(server, "task started: slow", timeout=1.0)
        assert "task done: slow" not in logs  # still sleeping: it did not block us
        wait_for_output(server, "task done: after")


def test_a_sync_worker_takes_the_next_client_at_once() -> None:
    with gunicorn_process(TARGET, "sync") as server:
        with connection_to(server) as warm_up:
            assert timed(warm_up, "GET", "/hello")[0] == 200  # the worker has booted
        with connection_to(server) as first:
            status, took = timed(first, "POST", "/work?names=slow&sleep=1.5")
            assert status == 200 and took < 0.5, f"the response waited {took:.2f}s"
        with connection_to(server) as second:
            status, took = timed(second, "GET", "/hello")
            assert status == 200 and took < 0.5, f"the next client waited {took:.2f}s"
        assert "task done: slow" not in server.logs()
        wait_for_output(server, "task done: slow")


def test_many_slow_sync_tasks_run_side_by_side_without_holding_up_responses() -> None:
    count = 40  # five times the gunicorn threads and the old fixed pool of 8
    with gunicorn_process(TARGET, "gthread") as server, connection_to(server) as connection:
        assert timed(connection, "GET", "/hello")[0] == 200  # the worker has booted
        started = time.monotonic()
        for number in range(count):
            status, took = timed(connection, "POST", f"/work?names=slow{number:02d}&sleep=1")
            assert status == 200 and took < 0.5, f"response {number} waited {took:.2f}s"
        for number in range(count):
            # Two digits: no name is the start of another (threads' lines may interleave).
            wait_for_output(server, f"task done: slow{number:02d}")
        elapsed = time.monotonic() - started
        logs = server.logs()
    # Side by side they take a second or two; eight at a time they would take five
    # (the margin is for a busy machine: this failed at 2.5 s of 3 with 24 tasks).
    assert elapsed < 3.5, f"{count} one-second tasks took {elapsed:.1f}s"
    assert "queue full" not in logs


@pytest.mark.slow  # the runner's unit test covers the same policy with no server
def test_past_a_full_task_queue_the_server_thread_runs_the_tasks_and_says_so() -> None:
    target = "tests.adapters.test_wsgi_gunicorn:tiny_wsgi"
    with gunicorn_process(target, "gthread") as server, connection_to(server) as connection:
        assert timed(connection, "GET", "/hello")[0] == 200
        for name in ("running", "queued", "overflow"):
            status, took = timed(connection, "POST", f"/work?names={name}&sleep=1")
            assert status == 200 and took < 0.5, f"the response to {name} waited {took:.2f}s"
            if name == "running":  # the one runner thread has taken it off the queue
                wait_for_output(server, "task started: running")
        # The response went out first; then this connection's thread ran the task
        # itself, so the next request on it waited: backpressure, nothing lost.
        status, took = timed(connection, "GET", "/hello")
        assert status == 200 and took > 0.5, f"the next request waited only {took:.2f}s"
        for name in ("running", "queued", "overflow"):
            wait_for_output(server, f"task done: {name}")
        logs = server.logs()
    assert "Background task queue full (1 waiting, 1 threads busy)" in logs, logs
    assert "abandoned" not in logs


@pytest.mark.parametrize(
    ("worker_class", "kind"),
    [
        pytest.param("sync", "mixed", marks=pytest.mark.slow),  # same drain, other worker
        ("gthread", "mixed"),
        ("gthread", "async"),
    ],
)
def test_sigterm_lets_every_task_finish_then_the_worker_exits_cleanly(
    worker_class: str, kind: str
) -> None:
    with gunicorn_process(TARGET, worker_class, "--graceful-timeout", "10") as server:
        with connection_to(server) as connection:
            work = f"/work?kind={kind}&names="
            assert timed(connection, "POST", f"{work}a,b,c,d&sleep=1.0")[0] == 200
            assert timed(connection, "POST", f"{work}e,f")[0] == 200
        wait_for_output(server, "task started: a")
        started = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout=15)
        logs = server.logs()
    assert code == 0, logs
    for name in "abcdef":
        assert f"task done: {name}" in logs, logs
    assert "abandoned" not in logs
    assert "Worker exiting" in logs
    assert time.monotonic() - started < 8


def test_a_task_past_the_drain_deadline_is_logged_by_name_as_abandoned() -> None:
    # graceful_timeout 3 s leaves the drain 2 s after SIGTERM (a tenth, at least 1 s, spare).
    with gunicorn_process(TARGET, "gthread", "--graceful-timeout", "3") as server:
        with connection_to(server) as connection:
            assert timed(connection, "POST", "/work?names=stuck,next,last&sleep=30")[0] == 200
        wait_for_output(server, "task started: stuck")
        started = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout=15)
        stopped_after = time.monotonic() - started
        logs = server.logs()
    assert code == 0, logs
    # Drained within its 2 s budget and exited by itself: gunicorn's master would
    # have killed it at 3 s (and logged "was sent SIGKILL"). The time has slack
    # for a busy machine; the logs say which it was.
    assert "Worker exiting" in logs and "SIGKILL" not in logs, logs
    assert stopped_after < 4.0, f"the worker took {stopped_after:.1f}s to stop"
    lines = [line for line in logs.splitlines() if "abandoned" in line]
    assert any(f"{STEP} for POST /work abandoned: still running" in line for line in lines), logs
    assert any(f"{STEP_ASYNC} for POST /work abandoned" in line for line in lines), logs
    assert sum(f"{STEP} for" in line for line in lines) == 2, logs  # stuck and last
    assert "task done" not in logs
    # Before draining, the worker said what it would wait for, by name.
    assert f"for background tasks: 1 running ({STEP}), 2 pending" in logs, logs


@pytest.mark.slow  # the unit test of the runner covers the same with no server
def test_async_tasks_past_the_drain_deadline_are_interrupted_and_logged_by_name() -> None:
    with gunicorn_process(TARGET, "gthread", "--graceful-timeout", "3") as server:
        with connection_to(server) as connection:
            path = "/work?kind=async&names=stuck,next&sleep=30"
            assert timed(connection, "POST", path)[0] == 200
        wait_for_output(server, "task started: stuck")
        code = server.stop(signal.SIGTERM, timeout=15)
        logs = server.logs()
    assert code == 0, logs
    assert f"{STEP_ASYNC} for POST /work interrupted" in logs, logs
    assert f"{STEP_ASYNC} for POST /work abandoned: the server stopped first" in logs, logs
    assert "task done" not in logs


def test_run_gunicorn_serves_an_app_and_drains_through_its_hooks() -> None:
    port = free_port()
    script = (
        "import sys; from velocipy.adapters.gunicorn_runner import run_gunicorn; "
        f"sys.exit(run_gunicorn({'tests.adapters.test_wsgi_gunicorn:app'!r}, host='127.0.0.1', "
        f"port={port}, workers=1, threads=2, log_level='info', access_log=False, "
        "graceful_timeout=4.5))"
    )
    with run_server([PYTHON, "-c", script], port=port) as server, connection_to(server) as conn:
        assert timed(conn, "GET", "/hello")[0] == 200
        status, took = timed(conn, "POST", "/work?names=one,two&sleep=1.5")
        assert status == 200 and took < 0.5
        wait_for_output(server, "task started: one")
        code = server.stop(signal.SIGTERM, timeout=15)
        logs = server.logs()
    assert code == 0, logs
    assert "task done: one" in logs and "task done: two" in logs
    assert "gthread" in logs  # threads > 1 chose the gthread worker


def test_run_gunicorn_says_how_to_install_gunicorn_when_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from velocipy.adapters.gunicorn_runner import run_gunicorn

    monkeypatch.setitem(sys.modules, "gunicorn.app.base", None)  # import now fails
    code = run_gunicorn(
        "tests.conformance.app:app",
        host="127.0.0.1",
        port=free_port(),
        workers=1,
        threads=1,
        log_level="info",
        access_log=False,
        graceful_timeout=5,
    )
    assert code == 1
    assert "pip install 'velocipy[gunicorn]'" in capsys.readouterr().err


def test_run_gunicorn_reports_a_target_it_cannot_load(capsys: pytest.CaptureFixture[str]) -> None:
    from velocipy.adapters.gunicorn_runner import load_wsgi, run_gunicorn

    code = run_gunicorn(
        "tests.no_such_module:app",
        host="127.0.0.1",
        port=free_port(),
        workers=1,
        threads=1,
        log_level="info",
        access_log=False,
        graceful_timeout=5,
    )
    assert code == 1
    assert "cannot load 'tests.no_such_module:app'" in capsys.readouterr().err
    assert load_wsgi("tests.adapters.test_wsgi_gunicorn:app") is app.wsgi
    assert load_wsgi("tests.adapters.test_wsgi_gunicorn:hello") is hello  # a plain callable


def test_the_background_tasks_example_runs_under_gunicorn() -> None:
    with gunicorn_process("examples.background_tasks:wsgi", "gthread") as server:
        with connection_to(server) as connection:
            connection.request(
                "POST",
                "/signup",
                body=b'{"email": "ada@example.com"}',
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 200
            assert b"ada@example.com" in response.read()
        wait_for_output(server, "Sent welcome email to ada@example.com")
