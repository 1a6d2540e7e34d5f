"""The ASGI adapter under a real uvicorn: tasks after the response, keep-alive, the shutdown drain.

The servers serve `app` from this very module (`tests.adapters.test_asgi_uvicorn:app`);
its tasks print what they did, so the test reads their fate in the server's output
even after the process has exited.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conformance.drivers.uvicorn_h11 import uvicorn_process
from tests.support.servers import PYTHON, ROOT, free_port, run_server
from velocipy import BackgroundTasks, VelociPy

app = VelociPy()
EVENTS: dict[str, list[str]] = {}


def say(text: str) -> None:
    print(text, flush=True)


async def slow(key: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    EVENTS.setdefault(key, []).append("slow")
    say(f"task slow {key} done")


def sync_step(key: str, seconds: float) -> None:
    time.sleep(seconds)
    say(f"task sync_step {key} done")


async def async_step(key: str) -> None:
    say(f"task async_step {key} done")


async def stuck(key: str) -> None:
    await asyncio.sleep(60)
    say(f"task stuck {key} done")  # never printed: the drain is cut short


def never_one(key: str) -> None:
    say(f"task never_one {key} ran")


async def never_two(key: str) -> None:
    say(f"task never_two {key} ran")


@app.post("/slow/{key}")
async def schedule_slow(key: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(slow, key, 1.5)
    return "scheduled"


@app.get("/events/{key}")
async def events(key: str) -> list[str]:
    return EVENTS.get(key, [])


@app.get("/gc-frozen")
async def gc_frozen() -> int:
    return gc.get_freeze_count()


@app.post("/drain/{key}")
async def schedule_drain(key: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(slow, key, 1.0)
    background_tasks.add_task(sync_step, key, 0.3)
    background_tasks.add_task(async_step, key)
    return "scheduled"


@app.post("/stuck/{key}")
async def schedule_stuck(key: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(stuck, key)
    background_tasks.add_task(never_one, key)
    background_tasks.add_task(never_two, key)
    return "scheduled"


def refuse_to_start() -> None:
    raise RuntimeError("the database is unreachable")


#: An app whose startup fails, for `run_uvicorn`'s exit code.
broken = VelociPy(on_startup=[refuse_to_start])

TARGET = "tests.adapters.test_asgi_uvicorn:app"
#: uvicorn re-raises the signal it stopped on once it is done, so a clean stop ends by it.
CLEAN_EXIT = (0, -signal.SIGTERM)


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_uvicorn_detects_an_app_as_asgi3() -> None:
    import uvicorn

    config = uvicorn.Config(app=VelociPy(), interface="auto")
    config.load()
    assert config.interface == "asgi3"


@pytest.mark.server
@pytest.mark.parametrize("http_impl", ["h11", "httptools"])
def test_a_slow_task_delays_neither_the_response_nor_the_next_request(http_impl: str) -> None:
    with uvicorn_process(TARGET, http_impl) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        started = time.monotonic()
        connection.request("POST", "/slow/k1")
        response = connection.getresponse()
        assert response.status == 200 and response.read() == b'"scheduled"'
        answered = time.monotonic() - started
        assert answered < 1.0, f"the response waited {answered:.2f}s for a 1.5 s task"

        socket_before = connection.sock
        started = time.monotonic()
        connection.request("GET", "/events/k1")  # same keep-alive connection
        response = connection.getresponse()
        still_running = json.loads(response.read())
        answered = time.monotonic() - started
        assert connection.sock is socket_before, "the connection was not kept alive"
        assert still_running == [], "the task was expected to be still running"
        assert answered < 0.5, f"the next request waited {answered:.2f}s for the task"

        def finished() -> bool:
            connection.request("GET", "/events/k1")
            return bool(json.loads(connection.getresponse().read()) == ["slow"])

        assert wait_for(finished, 5.0)
        # uvicorn ran the lifespan startup, after which the adapter froze what existed.
        connection.request("GET", "/gc-frozen")
        assert int(connection.getresponse().read()) > 1000
        connection.close()
        assert "Exception in ASGI application" not in server.logs()


@pytest.mark.server
def test_sigterm_waits_for_every_running_task() -> None:
    with uvicorn_process(TARGET, "httptools") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("POST", "/drain/d1")
        assert connection.getresponse().read() == b'"scheduled"'
        connection.close()
        code = server.stop(signal.SIGTERM, timeout=15)
        logs = server.logs()
    assert code in CLEAN_EXIT, logs
    done = [line for line in logs.splitlines() if line.startswith("task ")]
    assert done == ["task slow d1 done", "task sync_step d1 done", "task async_step d1 done"]
    assert "abandoned" not in logs and "interrupted" not in logs


@pytest.mark.server
def test_a_graceful_timeout_logs_the_interrupted_and_abandoned_tasks_by_name() -> None:
    with uvicorn_process(TARGET, "httptools", "--timeout-graceful-shutdown", "1") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("POST", "/stuck/s1")
        assert connection.getresponse().read() == b'"scheduled"'
        connection.close()
        time.sleep(0.2)  # let the first task start
        started = time.monotonic()
        server.stop(signal.SIGTERM, timeout=15)
        stopped_in = time.monotonic() - started
        logs = server.logs()
    assert stopped_in < 8, f"the drain took {stopped_in:.1f}s despite the 1 s timeout"
    module = "tests.adapters.test_asgi_uvicorn"
    assert f"Background task {module}.stuck for POST /stuck/{{key}} interrupted" in logs, logs
    for name in ("never_one", "never_two"):
        assert f"Background task {module}.{name} for POST /stuck/{{key}} abandoned" in logs
        assert f"task {name} s1 ran" not in logs
    assert "task stuck s1 done" not in logs


def run_uvicorn_argv(target: str, port: int) -> list[str]:
    code = (
        "import sys\n"
        "from velocipy.adapters.uvicorn_runner import run_uvicorn\n"
        f"sys.exit(run_uvicorn({target!r}, host='127.0.0.1', port={port}, workers=1,"
        " log_level='info', access_log=False, timeout_graceful_shutdown=5))\n"
    )
    return [PYTHON, "-c", code]


@pytest.mark.server
def test_run_uvicorn_serves_the_app_and_stops_cleanly() -> None:
    port = free_port()
    with run_server(run_uvicorn_argv(TARGET, port), port=port) as server:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/events/none")
        assert connection.getresponse().read() == b"[]"
        connection.close()
        assert server.stop(signal.SIGTERM) in CLEAN_EXIT


@pytest.mark.server
def test_run_uvicorn_reports_a_failed_startup_with_uvicorns_exit_code() -> None:
    port = free_port()
    result = subprocess.run(
        run_uvicorn_argv("tests.adapters.test_asgi_uvicorn:broken", port),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 3, result.stderr
    assert "the database is unreachable" in result.stderr


def test_run_uvicorn_without_uvicorn_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from velocipy.adapters.uvicorn_runner import run_uvicorn

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    code = run_uvicorn(
        TARGET, host="127.0.0.1", port=1, workers=1, log_level="info", access_log=False
    )
    assert code == 1
    assert "pip install 'velocipy[uvicorn]'" in capsys.readouterr().err


@pytest.mark.server
def test_uvicorn_serves_the_background_tasks_example() -> None:
    with uvicorn_process("examples.background_tasks:app", "httptools") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        body = json.dumps({"email": "ada@example.com"})
        headers = {"content-type": "application/json"}
        connection.request("POST", "/signup", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read()) == {"status": "ok", "email": "ada@example.com"}
        connection.close()
        assert wait_for(lambda: "Sent welcome email to ada@example.com" in server.logs(), 5)
