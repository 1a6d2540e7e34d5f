"""A task's `BaseException` on every real server: a logged failure, never a stop.

Issue 17, defects 1, 2, 3 and 5. One server process per server takes every kind
of `BaseException` (`SystemExit`, `KeyboardInterrupt`, a subclass of the app's
own, `GeneratorExit`) from a sync task, an async one, and an async one among sync
ones (under WSGI a runner thread awaits that one on the event-loop thread).
Before the fix, the first such task stopped the built-in server (exit code = the
task's), killed gunicorn's event-loop thread (async routes answered 500 from then
on) or a task-runner thread (later sync tasks never ran), and everywhere the
request's later tasks were logged "abandoned: the server stopped first".

Afterwards, each failing task is logged as failed with its real type and
traceback, the tasks after it in its request run, the server keeps serving sync
and async routes, and later requests' tasks run.
"""

from __future__ import annotations

import re
import signal

import httpx
import pytest

from tests.reliability.app import KINDS, MODES
from tests.reliability.servers import serve, wait_until_ran

pytestmark = pytest.mark.server

FAIL = "tests.reliability.app.fail"


@pytest.mark.parametrize(
    "server_name",
    [
        "velocipy",
        "uvicorn",
        "gunicorn-gthread",
        pytest.param("gunicorn-sync", marks=pytest.mark.slow),  # the gthread case's runner
    ],
)
def test_a_task_base_exception_is_a_logged_failure_and_the_server_goes_on(
    server_name: str,
) -> None:
    with serve(server_name) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/ping").status_code == 200
        expected: set[str] = set()
        for kind in KINDS:
            for mode in MODES:
                tag = f"{kind}-{mode}"
                params = {"kind": kind, "mode": mode, "tag": tag, "after": 2}
                assert client.post("/fail", params=params).status_code == 200
                expected |= {f"{tag}-0", f"{tag}-1"}
        # The same request's later tasks ran: nothing was "abandoned".
        assert wait_until_ran(server, expected, timeout=10) == expected, server.logs()
        assert server.process.poll() is None, server.logs()
        # Every route still answers, and later tasks of both kinds run.
        assert client.get("/ping").status_code == 200, server.logs()
        assert client.get("/ping-sync").status_code == 200, server.logs()
        later = {f"later-{mode}" for mode in ("sync", "async")}
        for tag in later:
            params = {"tag": tag, "mode": tag.removeprefix("later-")}
            assert client.post("/record", params=params).status_code == 200
        assert wait_until_ran(server, later, timeout=10) == later, server.logs()
        logs = server.logs()
    for kind in KINDS:
        failed = re.findall(rf"{FAIL}(?:_async)? for POST /fail failed \({kind}\b", logs)
        assert len(failed) == len(MODES), (kind, logs)
    # The real type ends each traceback (`KeyboardInterrupt`, `SystemExit: 3`, …).
    assert len(re.findall(r"^SystemExit: 3$", logs, re.MULTILINE)) == len(MODES), logs
    assert "CustomBaseError: raised on purpose" in logs
    assert "abandoned" not in logs and "interrupted" not in logs, logs
    assert "LoopStopped" not in logs and "Exception in thread" not in logs, logs


@pytest.mark.parametrize(
    ("mode", "defect"),
    [("sync", "a task-runner thread died"), ("async", "the event-loop thread died")],
)
def test_under_gunicorn_one_failing_task_leaves_the_worker_whole(mode: str, defect: str) -> None:
    # Alone in its request, so that nothing else of it can hide what became of the
    # worker: before the fix, `SystemExit` from a sync task killed the one runner
    # thread (later sync tasks never ran), and from an async task the event-loop
    # thread (async routes answered 500, async tasks never ran).
    later = {f"later-{number:02d}" for number in range(20)}
    with serve("gunicorn-gthread") as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/ping").status_code == 200
        params = {"kind": "SystemExit", "mode": mode, "tag": "none", "after": 0}
        assert client.post("/fail", params=params).status_code == 200
        for tag in sorted(later):
            assert client.post("/record", params={"tag": tag, "mode": mode}).status_code == 200
        assert wait_until_ran(server, later, timeout=5) == later, f"{defect}:\n{server.logs()}"
        assert client.get("/ping").status_code == 200, f"{defect}:\n{server.logs()}"
        logs = server.logs()
    assert "for POST /fail failed (SystemExit" in logs, logs


@pytest.mark.slow  # a few seconds: gunicorn's stop
def test_under_gunicorn_an_awaited_task_cut_off_at_exit_is_named_without_a_thread_traceback() -> (
    None
):
    # Issue 17, defect 8: a runner thread awaiting an async task on the event loop got
    # the loop's cancellation at exit and died with a bare "Exception in thread" trace.
    # Then the task was named in about 1 run of 5 only: the client's idle keep-alive
    # connection keeps the gthread worker in its graceful wait for all of
    # graceful_timeout, when its master kills it, so a drain left to the exit never
    # ran. The drain now happens at its deadline whatever the worker's exit does.
    with serve("gunicorn-gthread", graceful=1) as server, httpx.Client(base_url=server.url) as c:
        params = {"tag": "hang", "mode": "mixed", "sleep": 60}
        assert c.post("/record", params=params).status_code == 200
        assert wait_until_ran(server, {"hang-first"}, timeout=5) == {"hang-first"}
        assert server.stop(signal.SIGTERM, timeout=15) == 0
        logs = server.logs()
    line = "tests.reliability.app.record_async for POST /record abandoned: still running"
    assert line in logs, logs
    assert "Exception in thread" not in logs and "Traceback" not in logs, logs
