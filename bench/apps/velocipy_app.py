"""The scenarios in VelociPy: `app` (async handlers and task) for ASGI and the built-in server,
`wsgi` (sync handlers and task, a second app instance) for gunicorn.

`make_app` is also what the core-overhead measurement drives directly.

`BENCH_MAX_TASKS_IN_FLIGHT` (an integer; unset: the framework's default of
1,000) sets the app's `max_tasks_in_flight`. The latency-under-tasks and
queued-tasks measurements raise it: at 1,000 req/s with 1 s tasks about 1,000
tasks are in flight, exactly the default bound, so with it the servers apply
backpressure (by design) and those scenarios would measure the bound instead of
what a slow task does to responses, or memory per queued task. A large integer
rather than no bound keeps the in-flight accounting on the measured path.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Annotated, Any

from bench.apps._common import (
    current_owner,
    current_owner_async,
    record_signup,
    record_signup_async,
)
from velocipy import BackgroundTasks, Depends, VelociPy

#: `max_tasks_in_flight` for the apps built here (None: the framework's default).
_BOUND = os.environ.get("BENCH_MAX_TASKS_IN_FLIGHT", "").strip()


@dataclasses.dataclass
class Signup:
    email: str
    name: str


def make_app(*, asynchronous: bool) -> VelociPy:
    """The three scenarios, with async handlers and task, or sync ones."""
    application = VelociPy(max_tasks_in_flight=int(_BOUND)) if _BOUND else VelociPy()
    if asynchronous:

        @application.get("/hello")
        async def hello() -> dict[str, str]:
            return {"message": "hello"}

        @application.post("/signup")
        async def signup(data: Signup, background_tasks: BackgroundTasks) -> dict[str, str]:
            background_tasks.add_task(record_signup_async, data.email)
            return {"status": "ok", "email": data.email}

        @application.get("/items/{item_id}")
        async def item(
            item_id: int, owner: Annotated[str, Depends(current_owner_async)], q: str | None = None
        ) -> dict[str, Any]:
            return {"item_id": item_id, "q": q, "owner": owner}

    else:

        @application.get("/hello")
        def hello_sync() -> dict[str, str]:
            return {"message": "hello"}

        @application.post("/signup")
        def signup_sync(data: Signup, background_tasks: BackgroundTasks) -> dict[str, str]:
            background_tasks.add_task(record_signup, data.email)
            return {"status": "ok", "email": data.email}

        @application.get("/items/{item_id}")
        def item_sync(
            item_id: int, owner: Annotated[str, Depends(current_owner)], q: str | None = None
        ) -> dict[str, Any]:
            return {"item_id": item_id, "q": q, "owner": owner}

    return application


app = make_app(asynchronous=True)


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # `gunicorn bench.apps.velocipy_app:wsgi`; built on first use
        if "wsgi" not in _built:
            _built["wsgi"] = make_app(asynchronous=False).wsgi
        return _built["wsgi"]
    raise AttributeError(name)
