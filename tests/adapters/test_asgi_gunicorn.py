"""The ASGI adapter under gunicorn 27's own ASGI worker (`gunicorn -k asgi`).

It serves the app from `test_asgi_uvicorn`; tasks print what they did, so the
test reads their fate in gunicorn's output.
"""

from __future__ import annotations

import http.client
import json
import signal
import time

import pytest

from tests.support.servers import PYTHON, free_port, run_server

pytest.importorskip("gunicorn.workers.gasgi")


@pytest.mark.server
def test_gunicorn_asgi_worker_serves_runs_tasks_and_logs_the_cut_ones() -> None:
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "gunicorn",
        "-k",
        "asgi",
        "-w",
        "1",
        "-b",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "5",
        "tests.adapters.test_asgi_uvicorn:app",
    ]
    with run_server(argv, port=port) as server:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        # gunicorn's master listens before its worker has imported the app: wait for
        # the worker first, so that the timing below measures the response alone.
        connection.request("GET", "/events/warm-up")
        assert connection.getresponse().read() == b"[]"
        started = time.monotonic()
        connection.request("POST", "/slow/g1")
        assert connection.getresponse().read() == b'"scheduled"'
        assert time.monotonic() - started < 1.0  # the 1.5 s task runs after the response
        connection.request("GET", "/events/g1")
        assert json.loads(connection.getresponse().read()) == []
        deadline = time.monotonic() + 5
        while "task slow g1 done" not in server.logs() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "task slow g1 done" in server.logs()

        connection.request("POST", "/stuck/s1")
        assert connection.getresponse().read() == b'"scheduled"'
        connection.close()
        time.sleep(0.2)
        server.stop(signal.SIGTERM, timeout=15)
        logs = server.logs()
    module = "tests.adapters.test_asgi_uvicorn"
    assert f"Background task {module}.stuck for POST /stuck/{{key}} interrupted" in logs, logs
    assert f"Background task {module}.never_one for POST /stuck/{{key}} abandoned" in logs
    assert f"Background task {module}.never_two for POST /stuck/{{key}} abandoned" in logs
