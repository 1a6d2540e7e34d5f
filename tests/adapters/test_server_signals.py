"""Stopping `velocipy run` with signals, in a subprocess: drain, deadline, forced exit.

SIGTERM while tasks run: every task finishes and the exit code is 0. A task
outliving a short graceful timeout is cancelled and logged by name. A second
signal ends the process at once, with exit code 1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

pytestmark = pytest.mark.server

APP = "tests.adapters.test_server_harness:app"


@contextlib.contextmanager
def velocipy_run(*extra: str) -> Iterator[ServerProcess]:
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", APP, "--port", str(port), *extra]
    with run_server(argv, port=port) as server:
        yield server


def schedule(client: httpx.Client, kind: str, key: str, seconds: float) -> None:
    response = client.post(f"/task/{kind}/{key}", params={"seconds": seconds})
    assert response.status_code == 200


def wait_for_text(server: ServerProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (logs := server.logs()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged:\n{logs}")
        time.sleep(0.02)
    return logs


def test_sigterm_waits_for_every_running_task() -> None:
    key = uuid.uuid4().hex[:8]
    with velocipy_run("--graceful-timeout", "15") as server:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(4):
                schedule(client, "async", key, 1.0)
            schedule(client, "sync", key, 1.0)
        assert "EVENT" not in server.logs()  # all five are still running
        assert server.stop(signal.SIGTERM) == 0
        logs = server.logs()
    after_signal = logs.split("Received SIGTERM", 1)[1]
    assert after_signal.count(f"EVENT slow-async {key}") == 4, logs
    assert after_signal.count(f"EVENT slow-sync {key}") == 1, logs
    assert "Stopped" in logs


def test_tasks_past_the_graceful_timeout_are_cancelled_and_named() -> None:
    key = uuid.uuid4().hex[:8]
    with velocipy_run("--graceful-timeout", "0.5") as server:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            schedule(client, "async", key, 30)
            schedule(client, "sync", key, 30)  # a thread cannot be stopped: it is abandoned
        started = time.monotonic()
        assert server.stop(signal.SIGTERM, timeout=10) == 0
        assert time.monotonic() - started < 8
        logs = server.logs()
    assert "EVENT" not in logs
    assert "Graceful timeout (0.5s) reached: cancelling 2 background task flow(s)" in logs
    # Named from app.tasks when the wait began and again when it gave up.
    harness = "tests.adapters.test_server_harness"
    running = f"2 running ({harness}.slow_async, {harness}.slow_sync)"
    assert f"Waiting for background tasks: {running}" in logs, logs
    assert f"unfinished tasks: {running}" in logs, logs
    assert "tests.adapters.test_server_harness.slow_async" in logs
    assert "tests.adapters.test_server_harness.slow_sync" in logs
    assert "interrupted" in logs


def test_a_second_signal_exits_at_once() -> None:
    key = uuid.uuid4().hex[:8]
    with velocipy_run("--graceful-timeout", "60") as server:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            schedule(client, "async", key, 60)
        server.process.send_signal(signal.SIGTERM)
        wait_for_text(server, "Received SIGTERM")
        started = time.monotonic()
        assert server.stop(signal.SIGINT, timeout=10) == 1
        assert time.monotonic() - started < 5
        logs = server.logs()
    assert "Received SIGINT again: exiting now" in logs
    assert "slow_async" in logs and "interrupted" in logs


def test_workers_share_the_socket_are_replaced_and_stop_together() -> None:
    key = uuid.uuid4().hex[:8]
    with velocipy_run("--workers", "2", "--graceful-timeout", "15") as server:
        logs = wait_for_text(server, "2 workers")
        pids = [int(line.split()[-1]) for line in logs.splitlines() if "Started worker" in line]
        assert len(pids) == 2
        os.kill(pids[0], signal.SIGKILL)
        wait_for_text(server, f"Worker {pids[0]} exited with code -9")
        wait_for_text(server, "Started worker", timeout=10)
        deadline = time.monotonic() + 10
        while server.logs().count("Started worker") < 3:
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.02)
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(4):
                schedule(client, "async", key, 0.5)
        code = server.stop(signal.SIGTERM)
        assert code == 0, server.logs()
        logs = server.logs()
    assert logs.count(f"EVENT slow-async {key}") == 4, logs
    assert logs.count("INFO:     Stopped") == 2, logs


def test_a_stop_while_a_replacement_worker_is_starting_still_drains_it() -> None:
    # The master forwards SIGTERM as soon as it comes; a worker forked a moment
    # before has not installed its handler yet, and must not die of the signal.
    with velocipy_run("--workers", "2") as server:
        logs = wait_for_text(server, "2 workers")
        pids = [int(line.split()[-1]) for line in logs.splitlines() if "Started worker" in line]
        os.kill(pids[0], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.logs().count("Started worker") < 3:
            assert time.monotonic() < deadline, server.logs()
            time.sleep(0.001)
        code = server.stop(signal.SIGTERM)
        assert code == 0, server.logs()
        assert server.logs().count("INFO:     Stopped") == 2, server.logs()


def test_a_stop_as_the_master_replaces_a_retired_worker_starts_no_worker_it_cannot_stop(
    tmp_path: Path,
) -> None:
    # SIGTERM lands the moment the master logs that a worker retired, i.e. after it
    # decided to replace it and before the fork. The master must not fork a worker
    # that the stop it already forwarded never reached: it would wait for it forever.
    log_config = tmp_path / "log.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
                "handlers": {
                    "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
                    "stop": {
                        "()": "tests.support.signal_on_log.SignalOnMessage",
                        "text": "retired: starting a fresh one",
                    },
                },
                "loggers": {
                    "velocipy": {"handlers": ["stderr", "stop"], "level": "INFO"},
                },
            }
        )
    )
    extra = ("--workers", "2", "--limit-max-requests", "1", "--log-config", str(log_config))
    with velocipy_run(*extra) as server:
        wait_for_text(server, "2 workers")
        reply = httpx.get(f"{server.url}/hello", headers={"Connection": "close"}, timeout=10)
        assert reply.status_code == 200
        try:
            code = server.process.wait(20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the master did not stop:\n{server.logs()}") from None
        logs = server.logs()
    assert code == 0, logs
    assert "Received SIGTERM: stopping" in logs, logs
    assert logs.count("Started worker") == 2, logs  # no replacement after the stop


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (not gone, not a zombie waiting for its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_workers_stop_when_their_master_is_killed_outright() -> None:
    with velocipy_run("--workers", "2") as server:
        logs = wait_for_text(server, "2 workers")
        pids = [int(line.split()[-1]) for line in logs.splitlines() if "Started worker" in line]
        os.kill(server.process.pid, signal.SIGKILL)  # no chance to stop its workers
        deadline = time.monotonic() + 10
        while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(pid) for pid in pids), server.logs()
        assert "is gone: stopping" in server.logs()


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_a_stop_still_answers_a_just_accepted_connection(http: str) -> None:
    """Its client has most likely sent the request already (a reload, a rolling restart)."""
    with velocipy_run("--http", http) as server:
        wait_for_text(server, "press CTRL+C to stop")  # its stop signals are handled
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            time.sleep(0.3)  # accepted by now, its request not yet sent
            server.process.send_signal(signal.SIGTERM)
            wait_for_text(server, "Received SIGTERM")
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            response = read_until_closed(sock)
        assert response.startswith(b"HTTP/1.1 200"), response
        assert b"connection: close" in response.lower()
        assert server.process.wait(10) == 0  # and the stop goes on


def test_a_silent_new_connection_holds_a_stop_one_second_at_most() -> None:
    with velocipy_run("--header-timeout", "30") as server:
        wait_for_text(server, "press CTRL+C to stop")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            time.sleep(0.3)
            started = time.monotonic()
            assert server.stop(signal.SIGTERM, timeout=10) == 0
            assert time.monotonic() - started < 5
            assert read_until_closed(sock) == b""
