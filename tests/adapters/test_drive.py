"""The drivers: task timeouts and the app-wide running-task cap, with real threads and loops."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio
import pytest

from velocipy import BackgroundTasks, VelociPy
from velocipy.adapters._drive import await_coroutine, call_now, drive_async, drive_sync
from velocipy.core import Call, Done, RequestHead, Respond, TaskState


def make_app(limit: int | None) -> tuple[VelociPy, list[tuple[str, str, float]]]:
    app = VelociPy(max_running_tasks=limit)
    spans: list[tuple[str, str, float]] = []

    async def slow_async(name: str) -> None:
        spans.append((name, "start", time.monotonic()))
        await anyio.sleep(0.2)
        spans.append((name, "end", time.monotonic()))

    def slow_sync(name: str) -> None:
        spans.append((name, "start", time.monotonic()))
        time.sleep(0.2)
        spans.append((name, "end", time.monotonic()))

    @app.post("/async/{name}")
    async def schedule_async(name: str, tasks: BackgroundTasks) -> None:
        tasks.add_task(slow_async, name)

    @app.post("/sync/{name}")
    def schedule_sync(name: str, tasks: BackgroundTasks) -> None:
        tasks.add_task(slow_sync, name)

    return app, spans


def run_coroutine(coroutine: Any) -> Any:
    """A fresh event loop per coroutine: enough for a sync driver in a test."""
    return anyio.run(await_coroutine, coroutine)


def most_at_once(spans: list[tuple[str, str, float]]) -> int:
    running = peak = 0
    for _, kind, _ in sorted(spans, key=lambda s: (s[2], s[1] == "start")):
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    return peak


async def serve_async(app: VelociPy, path: str) -> None:
    async def no_body(limit: int) -> bytes:
        return b""

    async def in_thread(call: Call) -> Any:
        return await anyio.to_thread.run_sync(call_now, call, abandon_on_cancel=True)

    exchange = app.exchange(RequestHead("POST", path))
    effect = await drive_async(exchange, exchange.start(), read_body=no_body, run_sync=in_thread)
    assert isinstance(effect, Respond) and effect.status == 200
    effect = await drive_async(exchange, exchange.send(None), read_body=no_body, run_sync=in_thread)
    assert isinstance(effect, Done)


@pytest.mark.parametrize(("limit", "expected_peak"), [(1, 1), (2, 2), (None, 4)])
def test_async_driver_caps_running_tasks_app_wide(limit: int | None, expected_peak: int) -> None:
    app, spans = make_app(limit)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for index in range(4):
                group.start_soon(serve_async, app, f"/async/a{index}")

    anyio.run(main)
    assert len(spans) == 8
    assert most_at_once(spans) == expected_peak
    assert app.tasks.count("succeeded") == 4


def test_sync_driver_caps_running_tasks_across_threads() -> None:
    app, spans = make_app(1)

    def serve(path: str) -> None:
        exchange = app.exchange(RequestHead("POST", path))
        effect = drive_sync(
            exchange, exchange.start(), read_body=lambda limit: b"", run_coroutine=run_coroutine
        )
        assert isinstance(effect, Respond)
        drive_sync(
            exchange, exchange.send(None), read_body=lambda limit: b"", run_coroutine=run_coroutine
        )

    threads = [threading.Thread(target=serve, args=(f"/sync/s{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(spans) == 6
    assert most_at_once(spans) == 1


def test_sync_driver_times_out_sync_and_async_tasks() -> None:
    app = VelociPy()
    done: list[str] = []

    async def hang() -> None:
        await anyio.sleep(10)
        done.append("hang")

    def block() -> None:
        time.sleep(0.5)
        done.append("block")

    @app.post("/x")
    def handler(tasks: BackgroundTasks) -> None:
        tasks.add_task(hang).with_options(timeout=0.1)
        tasks.add_task(block).with_options(timeout=0.1)
        tasks.add_task(done.append, "next")

    exchange = app.exchange(RequestHead("POST", "/x"))
    respond = drive_sync(
        exchange, exchange.start(), read_body=lambda n: b"", run_coroutine=run_coroutine
    )
    assert isinstance(respond, Respond)
    started = time.monotonic()
    drive_sync(exchange, exchange.send(None), read_body=lambda n: b"", run_coroutine=run_coroutine)
    assert time.monotonic() - started < 0.45  # neither task held up the next for long
    assert done == ["next"]
    assert [t.state for t in respond.tasks] == [
        TaskState.TIMED_OUT,
        TaskState.TIMED_OUT,
        TaskState.SUCCEEDED,
    ]
    time.sleep(0.6)
    assert done == ["next", "block"]  # the sync task was left to finish in its thread


def test_tasks_waiting_for_a_running_slot_are_pending_and_abandoned_at_a_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Issue 17, defect 8: they were counted as running while they waited, and logged as
    # "interrupted" at the shutdown deadline although they had never started.
    app = VelociPy(max_running_tasks=1)

    async def hang(name: str) -> None:
        await anyio.sleep(60)

    @app.post("/hang/{name}")
    async def schedule(name: str, tasks: BackgroundTasks) -> None:
        tasks.add_task(hang, name)

    counts: dict[str, int] = {}

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for index in range(3):
                group.start_soon(serve_async, app, f"/hang/h{index}")
            with anyio.fail_after(5):
                while app.tasks.pending + app.tasks.running < 3:
                    await anyio.sleep(0.01)
            await anyio.sleep(0.05)  # the other two have reached their wait for the slot
            counts.update(running=app.tasks.running, pending=app.tasks.pending)
            group.cancel_scope.cancel()  # what a server does at its shutdown deadline

    with caplog.at_level(logging.WARNING, logger="velocipy"):
        anyio.run(main)
    assert counts == {"running": 1, "pending": 2}
    assert caplog.text.count("interrupted (CancelledError)") == 1, caplog.text
    assert caplog.text.count("abandoned: the server stopped first") == 2, caplog.text
    assert app.tasks.count("cancelled") == 1 and app.tasks.count("abandoned") == 2


@pytest.mark.parametrize("answers_at_once", [True, False])
def test_async_driver_takes_a_body_given_at_once_or_awaited(answers_at_once: bool) -> None:
    # The server's reader hands over a body that came with the head as bytes (no
    # coroutine); any other reader returns something to await. Both reach the handler.
    app = VelociPy()

    @app.post("/echo")
    async def echo(data: dict[str, Any]) -> dict[str, Any]:
        return data

    reads: list[int] = []

    def at_once(limit: int) -> bytes:
        reads.append(limit)
        return b'{"a": 1}'

    async def awaited(limit: int) -> bytes:
        reads.append(limit)
        return b'{"a": 1}'

    async def main() -> Any:
        async def in_thread(call: Call) -> Any:
            return await anyio.to_thread.run_sync(call_now, call)

        exchange = app.exchange(
            RequestHead("POST", "/echo", headers=((b"content-type", b"application/json"),))
        )
        reader = at_once if answers_at_once else awaited
        return await drive_async(exchange, exchange.start(), read_body=reader, run_sync=in_thread)

    respond = anyio.run(main)
    assert type(respond) is Respond
    assert respond.status == 200 and respond.body == b'{"a":1}'
    assert len(reads) == 1
