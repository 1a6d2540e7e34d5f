"""`drive_async` runs each async task in its own context, whether it finishes at once or waits.

The driver steps a task's coroutine itself (no `run_in_context` coroutine); a task
with a timeout goes through `run_in_context` and the core's `_InContext`. Both must
show the task what the handler set, keep what the task sets to itself, and hand a
cancellation (the timeout) into the waiting coroutine.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest

from velocipy.adapters._drive import drive_async
from velocipy.core import Application, BackgroundTasks, Done, RequestHead, Respond

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="-")


def make_app(seen: list[tuple[str, str]], timeout: float | None) -> Application:
    app = Application()

    async def quick(name: str) -> None:
        seen.append((name, var.get()))
        var.set(name)  # must not reach the next task

    async def waits(name: str) -> None:
        seen.append((name, var.get()))
        var.set(name)
        for _ in range(3):
            await asyncio.sleep(0)
        seen.append((name + " after waiting", var.get()))

    async def stuck(name: str) -> None:
        var.set(name)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append((name + " cancelled", var.get()))
            raise

    @app.post("/tasks")
    def handler(tasks: BackgroundTasks) -> str:
        var.set("handler")
        for func, name in ((quick, "quick"), (waits, "waits"), (stuck, "stuck")):
            task = tasks.add_task(func, name)
            if timeout is not None:
                task.with_options(timeout=timeout)
        tasks.add_task(quick, "last")
        return "ok"

    return app


async def serve(app: Application) -> None:
    async def read_body(limit: int, size: int = 0) -> bytes:
        return b""

    async def run_sync(call: Any) -> Any:
        return call.fn(*call.args, **call.kwargs)

    head = RequestHead("POST", "/tasks", b"", [], "1.1", "http", None, None)
    exchange = app.exchange(head)
    context = contextvars.copy_context()  # the request's, as servers give it
    effect = await context.run(
        asyncio.ensure_future,
        drive_async(exchange, exchange.start(), read_body=read_body, run_sync=run_sync),
    )
    assert type(effect) is Respond and effect.status == 200
    rest = exchange.send(None)
    if type(rest) is not Done:
        await drive_async(exchange, rest, read_body=read_body, run_sync=run_sync)


@pytest.mark.parametrize("timeout", [None, 0.05], ids=["no-timeout", "timeout"])
def test_async_tasks_run_in_their_own_context_waiting_or_not(
    timeout: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str]] = []
    app = make_app(seen, timeout)
    if timeout is None:
        # Without a timeout the stuck task is cut short by one: the driver's deadline.
        async def main() -> None:
            await asyncio.wait_for(serve(app), 0.05)

        with caplog.at_level(logging.WARNING, "velocipy"), pytest.raises(TimeoutError):
            asyncio.run(main())
        assert seen == [
            ("quick", "handler"),
            ("waits", "handler"),
            ("waits after waiting", "waits"),
            ("stuck cancelled", "stuck"),
        ]
        assert "interrupted" in caplog.text and "abandoned" in caplog.text  # logged, not lost
    else:
        with caplog.at_level(logging.ERROR, "velocipy"):
            asyncio.run(serve(app))
        assert seen == [
            ("quick", "handler"),
            ("waits", "handler"),
            ("waits after waiting", "waits"),
            ("stuck cancelled", "stuck"),
            ("last", "handler"),
        ]
        assert "timed out" in caplog.text
    assert var.get() == "-"
    assert app.tasks.running == 0 and app.tasks.pending == 0
