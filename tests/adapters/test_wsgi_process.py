"""What a WSGI process shares, in-process: the loop thread, gunicorn awareness, the exit drain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from velocipy import VelociPy
from velocipy.adapters import _wsgi_gunicorn, _wsgi_process
from velocipy.adapters._wsgi_loop import LoopStopped, LoopThread


def test_the_loop_thread_runs_coroutines_and_reports_their_errors() -> None:
    loop = LoopThread(name="test-loop")

    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    async def fails() -> None:
        raise KeyError("inside")

    assert not loop.running
    assert loop.run_coroutine(where()) == "test-loop"
    assert loop.running
    with pytest.raises(KeyError, match="inside"):
        loop.run_coroutine(fails())
    loop.stop()
    assert not loop.running
    coroutine = where()
    with pytest.raises(LoopStopped):
        loop.run_coroutine(coroutine)
    coroutine.close()


class _Config:
    graceful_timeout = 3
    timeout = 30


def _fake_worker_class() -> type:
    """A class that looks like a gunicorn worker to `current_worker` (module and cfg)."""

    class Worker:
        cfg = _Config()

        def __init__(self) -> None:
            self.signals: list[int] = []

        def handle_exit(self, signum: int, frame: Any) -> None:
            self.signals.append(signum)

    Worker.__module__ = "gunicorn.workers.fake"
    return Worker


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("sigterm_restored")
def test_a_gunicorn_worker_is_found_and_its_stop_signal_timed() -> None:
    assert _wsgi_gunicorn.current_worker() is None
    worker = _fake_worker_class()()
    signal.signal(signal.SIGTERM, worker.handle_exit)
    assert _wsgi_gunicorn.current_worker() is worker
    assert _wsgi_gunicorn.drain_budget(worker) == 2.0  # 3 s less a second
    stops: list[float] = []
    assert _wsgi_gunicorn.watch_stop_signals(worker, stops.append)
    os.kill(os.getpid(), signal.SIGTERM)
    deadline = time.monotonic() + 2
    while not worker.signals and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.signals == [signal.SIGTERM]  # gunicorn's handler still runs
    assert len(stops) == 1


def test_watching_stop_signals_needs_the_main_thread() -> None:
    worker = _fake_worker_class()()
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(_wsgi_gunicorn.watch_stop_signals(worker, print))
    )
    thread.start()
    thread.join()
    assert result == [False]


@pytest.mark.usefixtures("sigterm_restored")
def test_after_a_stop_signal_the_drain_happens_at_its_deadline_even_without_an_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 17, defect 8: a gthread worker waits for an idle keep-alive connection up
    # to its graceful_timeout, when its master kills it; a drain left to the exit
    # never ran, and the task cut off was not named.
    monkeypatch.setattr(_wsgi_process, "LOOP", LoopThread(name="watchdog-loop"))
    monkeypatch.setattr(_wsgi_process, "_state", _wsgi_process._ProcessState())
    drains: list[tuple[float, float]] = []

    def drain_all(deadline: float) -> bool:
        drains.append((deadline, time.monotonic()))
        return False

    monkeypatch.setattr(_wsgi_process, "drain_all", drain_all)
    worker = _fake_worker_class()()
    worker.cfg = type("Cfg", (), {"graceful_timeout": 1.5, "timeout": 30})()  # drain: 0.5 s
    signal.signal(signal.SIGTERM, worker.handle_exit)
    _wsgi_process.find_server(worker)
    time.sleep(0.2)
    assert drains == []  # nothing before a stop
    os.kill(os.getpid(), signal.SIGTERM)
    stop = _wsgi_process._current().stop_time
    assert stop is not None
    until = time.monotonic() + 5
    while not drains and time.monotonic() < until:
        time.sleep(0.01)
    assert len(drains) == 1
    deadline, drained_at = drains[0]
    assert deadline == stop + 0.5
    assert drained_at >= deadline
    _wsgi_process.shutdown()  # the exit comes later: drained already, not again
    assert len(drains) == 1


@pytest.mark.usefixtures("sigterm_restored")
def test_an_exit_that_drains_in_time_leaves_the_watchdog_nothing_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_wsgi_process, "LOOP", LoopThread(name="watchdog-loop"))
    monkeypatch.setattr(_wsgi_process, "_state", _wsgi_process._ProcessState())
    drains: list[float] = []
    monkeypatch.setattr(_wsgi_process, "drain_all", lambda deadline: drains.append(deadline))
    worker = _fake_worker_class()()
    worker.cfg = type("Cfg", (), {"graceful_timeout": 1.5, "timeout": 30})()
    signal.signal(signal.SIGTERM, worker.handle_exit)
    _wsgi_process.find_server(worker)
    os.kill(os.getpid(), signal.SIGTERM)
    _wsgi_process.shutdown()
    time.sleep(1.0)  # past the deadline
    assert len(drains) == 1


def test_drain_budget_takes_the_tighter_deadline() -> None:
    worker = _fake_worker_class()()
    worker.cfg = type("Cfg", (), {"graceful_timeout": 60, "timeout": 20})()
    assert _wsgi_gunicorn.drain_budget(worker) == 18.0
    worker.cfg = type("Cfg", (), {"graceful_timeout": 0, "timeout": 0})()
    assert _wsgi_gunicorn.drain_budget(worker) == 0.0


def test_shutdown_leaves_the_lifespan_after_the_drain_and_stops_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = LoopThread(name="shutdown-loop")
    monkeypatch.setattr(_wsgi_process, "LOOP", loop)
    monkeypatch.setattr(_wsgi_process, "_state", _wsgi_process._ProcessState())
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: VelociPy) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = VelociPy(lifespan=lifespan)
    assert _wsgi_process.has_lifespan(app)
    assert not _wsgi_process.has_lifespan(VelociPy())
    _wsgi_process.enter_lifespan(app)
    assert events == ["startup"] and loop.running
    _wsgi_process.shutdown()
    assert events == ["startup", "shutdown"]
    assert not loop.running
    _wsgi_process.shutdown()  # a second call (atexit after worker_exit) does nothing
    assert events == ["startup", "shutdown"]


def test_negative_drain_timeouts_are_refused() -> None:
    with pytest.raises(ValueError, match="drain_timeout"):
        _wsgi_process.set_drain_timeout(-1)
