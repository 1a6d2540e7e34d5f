"""gunicorn `--max-requests` recycling while tasks are queued: no task is silently lost (issue 17).

A worker that reaches `--max-requests` exits and gunicorn starts another; the
exiting worker's task runner drains first. Requests keep coming across
several recycles, each leaving a sync task that sleeps, so every recycle
happens with tasks running and queued. Every accepted task must end up run
("task done") or named in an abandonment line: here, with gunicorn's default
30 s graceful timeout, all of them run.
"""

from __future__ import annotations

import http.client
import re
import time

import pytest

from tests.conformance.drivers.gunicorn_sync import gunicorn_process
from tests.support.servers import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.slow]

TARGET = "tests.adapters.test_wsgi_gunicorn:wsgi"
MAX_REQUESTS = 15
REQUESTS = 45  # three recycles


def post(server: ServerProcess, name: str) -> int:
    """One request on a fresh connection, retried while a recycled worker is replaced."""
    deadline = time.monotonic() + 20
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request(
                "POST", f"/work?names={name}&sleep=0.3", headers={"Content-Length": "0"}
            )
            response = connection.getresponse()
            response.read()
            return response.status
        except (ConnectionError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            connection.close()


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_recycled_workers_drain_their_queued_tasks(worker_class: str) -> None:
    extra = ["--max-requests", str(MAX_REQUESTS), "--max-requests-jitter", "0"]
    with gunicorn_process(TARGET, worker_class, *extra) as server:
        names = [f"recycle{number:02d}" for number in range(REQUESTS)]
        accepted = [name for name in names if post(server, name) == 200]
        assert len(accepted) == REQUESTS
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            logs = server.logs()
            done = set(re.findall(r"task done: (recycle\d\d)", logs))
            if done >= set(accepted):
                break
            time.sleep(0.1)
        logs = server.logs()
    done = set(re.findall(r"task done: (recycle\d\d)", logs))
    abandoned = len(re.findall(r"abandoned|cut off at exit", logs))
    # Nothing silently lost: every task ran, or was named as abandoned.
    assert len(done) + abandoned >= len(accepted), logs[-5000:]
    assert done == set(accepted), f"not run: {sorted(set(accepted) - done)}\n{logs[-5000:]}"
    assert logs.count("Booting worker") >= REQUESTS // MAX_REQUESTS  # it did recycle
    assert "Traceback" not in logs, logs[-5000:]
