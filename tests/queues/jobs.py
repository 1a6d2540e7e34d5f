"""Task functions the queue tests publish: module-level, so a worker imports them by name.

Each run is recorded in `RUNS` (in-process tests) and, when `VELOCIPY_JOBS_LOG`
names a file, appended to it as one JSON line (worker subprocesses), so a test
can count runs across processes and worker restarts.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import os
import time
import uuid
from typing import Any

import anyio

from velocipy.tasks import current_task_id, request_id, traceparent

RUNS: list[dict[str, Any]] = []


class Plan(enum.Enum):
    FREE = "free"
    PRO = "pro"


@dataclasses.dataclass
class Signup:
    email: str
    at: datetime.datetime
    plan: Plan


def _record(name: str, **fields: Any) -> None:
    entry = {
        "task": name,
        "pid": os.getpid(),
        "at": time.time(),
        "request_id": request_id.get(),
        "traceparent": traceparent.get(),
        **fields,
    }
    RUNS.append(entry)
    path = os.environ.get("VELOCIPY_JOBS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry, default=str) + "\n")
            file.flush()
            os.fsync(file.fileno())


def record(label: str, n: int = 0) -> None:
    _record("record", label=label, n=n)


def record_id(label: str) -> None:
    _record("record_id", label=label, id=current_task_id.get(), engine_id=_engine_id())


def fail_id(label: str) -> None:
    _record("fail_id", label=label, id=current_task_id.get(), engine_id=_engine_id())
    raise RuntimeError(f"task {label} failed on purpose")


def _engine_id() -> str | None:
    """The id of the engine's message being run (Celery's task id, Dramatiq's message id)."""
    engine = os.environ.get("VELOCIPY_TEST_ENGINE")
    if engine == "celery":
        from celery import current_task

        return current_task.request.id if current_task else None
    if engine == "dramatiq":
        from dramatiq.middleware import CurrentMessage

        message = CurrentMessage.get_current_message()
        return message.message_id if message else None
    return None


def welcome(signup: Signup, ident: uuid.UUID, *, credit: decimal.Decimal) -> None:
    # The worker must hand back the types the annotations name, not the JSON.
    assert isinstance(signup, Signup) and isinstance(signup.at, datetime.datetime)
    assert isinstance(signup.plan, Plan) and isinstance(ident, uuid.UUID)
    assert isinstance(credit, decimal.Decimal)
    _record(
        "welcome", email=signup.email, plan=signup.plan.value, ident=str(ident), credit=str(credit)
    )


def fail(label: str) -> None:
    _record("fail", label=label)
    raise RuntimeError(f"task {label} failed on purpose")


async def async_record(label: str) -> None:
    await anyio.sleep(0.01)
    _record("async_record", label=label)


def slow(label: str, seconds: float) -> None:
    _record("slow-start", label=label)
    time.sleep(seconds)
    _record("slow-end", label=label)


def worker_hook(task: Any, error: BaseException) -> None:
    """An `on_task_error` hook installed on a test worker: writes what it saw to
    `VELOCIPY_HOOKS_LOG`, a file of its own (the runs' log stays the tasks')."""
    path = os.environ["VELOCIPY_HOOKS_LOG"]
    entry = {"task": task.name, "id": task.id, "error": type(error).__name__}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")
