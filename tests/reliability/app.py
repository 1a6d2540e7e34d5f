"""The app the reliability tests and `bench/reliability.py` serve on every real server.

Tasks print one line each (`ran: TAG`) when they run, flushed at once, so a test
reads what ran from the server's output, even after the server has stopped.
`POST /fail` schedules a task that raises a `BaseException` of the given kind,
followed by more tasks of the same request; `POST /record` schedules tasks that
only print; `GET /ping` and `GET /ping-sync` say whether the worker still serves
async and sync routes.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, NoReturn

from velocipy import BackgroundTasks, VelociPy

app = VelociPy()


class CustomBaseError(BaseException):
    """A `BaseException` subclass of the app's own, as some libraries define."""


#: The kinds of `BaseException` a task raises, by the name the tests use.
KINDS = ("SystemExit", "KeyboardInterrupt", "CustomBaseError", "GeneratorExit")


def _raise(kind: str) -> NoReturn:
    if kind == "SystemExit":
        sys.exit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "CustomBaseError":
        raise CustomBaseError("raised on purpose")
    if kind == "GeneratorExit":
        raise GeneratorExit
    raise ValueError(f"unknown kind {kind!r}")


def fail(kind: str) -> None:
    _raise(kind)


async def fail_async(kind: str) -> None:
    await asyncio.sleep(0)
    _raise(kind)


def say(line: str) -> None:
    """Print `line` in one write, so that lines of tasks on several threads never mix."""
    sys.stdout.write(f"{line}\n")
    sys.stdout.flush()


def record(tag: str, sleep: float = 0.0) -> None:
    if sleep:
        time.sleep(sleep)
    say(f"ran: {tag}")


async def record_async(tag: str, sleep: float = 0.0) -> None:
    if sleep:
        await asyncio.sleep(sleep)
    say(f"ran: {tag}")


#: How `POST /fail` mixes its tasks: the failing one, then the ones after it. "mixed" is an
#: async failing task among sync ones (under WSGI a runner thread then awaits it on the loop).
MODES = {
    "sync": (fail, record),
    "async": (fail_async, record_async),
    "mixed": (fail_async, record),
}


@app.post("/fail")
def fail_route(
    kind: str, mode: str, tag: str, background_tasks: BackgroundTasks, after: int = 1
) -> dict[str, str]:
    """A task raising `kind`, then `after` tasks `TAG-0`, `TAG-1`, … (see `MODES`)."""
    failing, following = MODES[mode]
    background_tasks.add_task(failing, kind)
    for number in range(after):
        background_tasks.add_task(following, f"{tag}-{number}")
    return {"scheduled": kind}


@app.post("/record")
def record_route(
    tag: str, background_tasks: BackgroundTasks, mode: str = "sync", sleep: float = 0.0
) -> dict[str, str]:
    """One task printing `ran: TAG` (after `sleep` seconds); "mixed": an async one after a
    sync one printing `ran: TAG-first` (under WSGI a runner thread then awaits the async one)."""
    if mode == "mixed":
        background_tasks.add_task(record, f"{tag}-first")
    background_tasks.add_task(record if mode == "sync" else record_async, tag, sleep)
    return {"scheduled": tag}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"ping": "pong"}


@app.get("/ping-sync")
def ping_sync() -> dict[str, str]:
    return {"ping": "pong"}


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # `gunicorn tests.reliability.app:wsgi`, built in the worker
        return app.wsgi
    raise AttributeError(name)
