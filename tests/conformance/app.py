"""The app every conformance driver serves: one route per behaviour under test.

Tasks record what they did in `EVENTS`, keyed by a per-test key, and
`GET /_events/{key}` reports it, so a test can observe tasks the same way
whether the app runs in-process or in a server subprocess.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import dataclasses
import hashlib
import os
import pathlib
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn

import pydantic

from velocipy import (
    BackgroundTasks,
    Depends,
    File,
    FileResponse,
    Form,
    FormLimits,
    HTTPException,
    Query,
    Request,
    Response,
    StreamingResponse,
    Task,
    UploadFile,
    VelociPy,
)

app = VelociPy()

EVENTS: dict[str, list[str]] = defaultdict(list)


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # `gunicorn tests.conformance.app:wsgi`, built on first use
        return app.wsgi
    raise AttributeError(name)


#: What a failing task raises, by the name a `TaskPlan` gives in `raises`.
FAILURES: dict[str, Callable[[str], BaseException]] = {
    "RuntimeError": lambda name: RuntimeError(f"task {name} failed on purpose"),
    "SystemExit": lambda name: SystemExit(f"task {name} exited on purpose"),
    "KeyboardInterrupt": lambda name: KeyboardInterrupt(f"task {name} interrupted on purpose"),
}


def record(
    key: str, name: str, *, fail: bool = False, sleep: float = 0.0, raises: str = "RuntimeError"
) -> None:
    if sleep:
        time.sleep(sleep)
    if fail:
        EVENTS[key].append(f"{name}:failed")
        raise FAILURES[raises](name)
    EVENTS[key].append(name)


async def record_async(
    key: str, name: str, *, fail: bool = False, sleep: float = 0.0, raises: str = "RuntimeError"
) -> None:
    if sleep:
        await asyncio.sleep(sleep)
    if fail:
        EVENTS[key].append(f"{name}:failed")
        raise FAILURES[raises](name)
    EVENTS[key].append(name)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.get("/hello-sync")
def hello_sync() -> dict[str, str]:
    return {"message": "hello"}


@app.get("/_events/{key}")
async def events(key: str) -> list[str]:
    return EVENTS.get(key, [])


@dataclasses.dataclass
class TaskPlan:
    names: list[str]
    fail: list[str] = dataclasses.field(default_factory=list)
    sleep: float = 0.0
    kind: str = "mixed"  # "sync", "async" or "mixed" (alternating, async first)
    raises: str = "RuntimeError"  # what the failing ones raise: a key of FAILURES


@app.post("/tasks/{key}")
async def schedule(key: str, plan: TaskPlan, background_tasks: BackgroundTasks) -> dict[str, Any]:
    for index, name in enumerate(plan.names):
        use_async = plan.kind == "async" or (plan.kind == "mixed" and index % 2 == 0)
        func = record_async if use_async else record
        sleep = plan.sleep if index == 0 else 0.0
        background_tasks.add_task(
            func, key, name, fail=name in plan.fail, sleep=sleep, raises=plan.raises
        )
    return {"scheduled": len(plan.names)}


async def wait_for_the_client(key: str, marker: str) -> None:
    """Hold the event loop (no `await`) until the client says it has its response.

    A task begun before its response left the server would hold the very loop that
    must write that response: the client could not answer, and this records so.
    """
    deadline = time.monotonic() + 3.0
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    EVENTS[key].append("after the response" if os.path.exists(marker) else "before the response")


@app.post("/after-the-response/{key}")
async def after_the_response(key: str, marker: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(wait_for_the_client, key, marker)
    return "sent"


@app.post("/tasks-then-crash/{key}")
def crash(key: str, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, key, "never")
    raise RuntimeError("handler crashed on purpose")


@app.post("/tasks-then-http-error/{key}")
async def http_error(key: str, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, key, "never")
    raise HTTPException(409, "conflict on purpose")


class CustomBaseError(BaseException):
    """A `BaseException` subclass of the app's own, as some libraries define."""


#: What `/base-exception/...` raises before the response, by the name the tests use.
BASE_EXCEPTIONS: dict[str, Callable[[str], BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "CustomBaseError": CustomBaseError,
}


def raise_base(kind: str, where: str, key: str) -> NoReturn:
    """Raise `kind` with a message that names `where` it came from and the test's `key`."""
    raise BASE_EXCEPTIONS[kind](f"{where} {key}")


def watched(key: str) -> Iterator[None]:
    """A `yield` dependency that records what its cleanup saw."""
    try:
        yield
    except BaseException as error:
        EVENTS[key].append(f"cleanup saw {type(error).__name__}")
        raise


def fails(key: str, kind: str) -> None:
    raise_base(kind, "dependency", key)


async def fails_async(key: str, kind: str) -> None:
    await asyncio.sleep(0)
    raise_base(kind, "dependency-async", key)


@app.post("/base-exception/handler/{key}", dependencies=[Depends(watched)])
def base_exception_handler(key: str, kind: str, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, key, "never")
    raise_base(kind, "handler", key)


@app.post("/base-exception/handler-async/{key}", dependencies=[Depends(watched)])
async def base_exception_handler_async(
    key: str, kind: str, background_tasks: BackgroundTasks
) -> None:
    background_tasks.add_task(record, key, "never")
    await asyncio.sleep(0)
    raise_base(kind, "handler-async", key)


@app.post("/base-exception/dependency/{key}", dependencies=[Depends(watched), Depends(fails)])
def base_exception_dependency(key: str, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, key, "never")


@app.post(
    "/base-exception/dependency-async/{key}",
    dependencies=[Depends(watched), Depends(fails_async)],
)
async def base_exception_dependency_async(key: str, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, key, "never")


def pagination(limit: Annotated[int, Query(alias="size")] = 10) -> dict[str, int]:
    return {"limit": limit}


@app.get("/items/{item_id}")
async def item(
    item_id: int,
    page: Annotated[dict[str, int], Depends(pagination)],
    q: str | None = None,
) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, **page}


@dataclasses.dataclass
class Signup:
    email: str
    age: int


@app.post("/signup")
async def signup(data: Signup) -> dict[str, Any]:
    return {"email": data.email, "age": data.age}


@app.post("/echo")
async def echo(data: dict[str, Any]) -> dict[str, Any]:
    return data


@app.get("/search")
def search(
    q: Annotated[str, Query(min_length=3, pattern="^[a-z]+$")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    return {"q": q, "limit": limit}


@app.get("/stream")
def stream() -> StreamingResponse:
    return StreamingResponse((f"chunk{i}\n" for i in range(3)), media_type="text/plain")


@app.get("/stream-async")
async def stream_async() -> StreamingResponse:
    async def chunks() -> Any:
        for i in range(3):
            yield f"chunk{i}\n"

    return StreamingResponse(chunks(), media_type="text/plain")


# -- background tasks beyond the basics: options, hooks, context, counts ------------------------

request_tag: contextvars.ContextVar[str] = contextvars.ContextVar("request_tag", default="unset")


@app.on_task_error
async def record_task_error(task: Task, error: BaseException) -> None:
    if task.route.startswith("POST /tasks"):
        return  # the basic contract tests count their own events only
    key = task.args[0] if task.args else "?"
    EVENTS[key].append(f"hook:{task.name}:{type(error).__name__}")


async def hang(key: str, name: str) -> None:
    EVENTS[key].append(f"{name}:started")
    await asyncio.sleep(30)
    EVENTS[key].append(f"{name}:finished")  # never reached: the timeout cancels it


def sleep_sync(key: str, name: str, seconds: float) -> None:
    time.sleep(seconds)
    EVENTS[key].append(f"{name}:finished")


@app.post("/timeouts/{key}")
async def timeouts(key: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(hang, key, "hung").with_options(timeout=0.3, name="hung-task")
    background_tasks.add_task(record, key, "after-async")
    background_tasks.add_task(sleep_sync, key, "slow-sync", 1.0).with_options(timeout=0.2)
    background_tasks.add_task(record, key, "after-sync")
    return "scheduled"


def record_tag(key: str, name: str) -> None:
    EVENTS[key].append(f"{name}={request_tag.get()}")


async def record_tag_async(key: str, name: str) -> None:
    EVENTS[key].append(f"{name}={request_tag.get()}")


async def tag_request(key: str) -> str:
    """An async dependency setting the request's tag: the handler sees it, the next request not."""
    request_tag.set(f"dependency-{key}")
    return key


@app.post("/context-sync/{key}")
def context_sync(key: str, background_tasks: BackgroundTasks) -> str:
    request_tag.set(f"sync-{key}")
    background_tasks.add_task(record_tag, key, "sync-task")
    background_tasks.add_task(record_tag_async, key, "async-task")
    return "ok"


@app.post("/context-async/{key}")
async def context_async(key: str, background_tasks: BackgroundTasks) -> str:
    request_tag.set(f"async-{key}")
    background_tasks.add_task(record_tag, key, "sync-task")
    background_tasks.add_task(record_tag_async, key, "async-task")
    return "ok"


@app.get("/context-now")
async def context_now() -> str:
    """What a request sees of `request_tag` before setting it: a fresh request sees "unset"."""
    return request_tag.get()


@app.get("/context-now-sync")
def context_now_sync() -> str:
    return request_tag.get()


@app.post("/context-set-in-dependency/{key}")
async def context_set_in_dependency(tag: str = Depends(tag_request)) -> str:
    return f"{tag}:{request_tag.get()}"


@app.post("/run-on/{key}/{outcome}")
async def run_on(key: str, outcome: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(record, key, "success-only")
    background_tasks.add_task(record, key, "error-only").with_options(run_on="error")
    background_tasks.add_task(record, key, "always").with_options(run_on="always")
    if outcome == "http-error":
        raise HTTPException(400, "refused on purpose")
    if outcome == "crash":
        raise RuntimeError("crashed on purpose")
    return "ok"


@app.post("/hooked/{key}")
async def hooked(key: str, background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(record, key, "bad", fail=True).with_options(name="bad-task")
    background_tasks.add_task(record, key, "good")
    return "ok"


@app.get("/_tasks")
async def task_counts() -> dict[str, Any]:
    return app.tasks.snapshot()


# -- responses and routes (FastAPI parity): redirects, files, response models ------------


def file_bytes() -> bytes:
    """The content `/file` serves: 200,000 deterministic bytes, several read chunks long."""
    return bytes(range(250)) * 800


_FILE = pathlib.Path(tempfile.gettempdir()) / f"velocipy-conformance-{os.getpid()}.bin"


@app.get("/file")
async def file() -> FileResponse:
    if not _FILE.exists():  # written on first use, by the process that serves it
        _FILE.write_bytes(file_bytes())
        atexit.register(_FILE.unlink, missing_ok=True)
    return FileResponse(_FILE)


@app.get("/slash")
async def slash() -> str:
    return "no trailing slash"


@app.post("/slashed/")
async def slashed() -> str:
    return "trailing slash"


class PublicUser(pydantic.BaseModel):
    name: str


@app.get("/public-user", response_model=PublicUser)
async def public_user(response: Response) -> Any:
    response.headers["X-Model"] = "PublicUser"
    response.set_cookie("seen", "1")
    response.status_code = 203
    return {"name": "ada", "password": "never sent"}


# -- forms and uploads (tests/conformance/test_uploads.py) --------------------------------------

#: Small enough that the conformance uploads spool to disk on every driver.
app.form_limits = FormLimits(spool_size=64 * 1024, max_size=8 * 1024 * 1024, max_files=3)


def digest_of(key: str, upload: UploadFile) -> None:
    """A task handed the upload: it is still open, and reads whole from the start."""
    upload.file.seek(0)
    EVENTS[key].append(hashlib.sha256(upload.file.read()).hexdigest())


@app.post("/upload/{key}")
async def upload(
    key: str,
    note: Annotated[str, Form()],
    file: Annotated[UploadFile, File()],
    background_tasks: BackgroundTasks,
    extra: list[UploadFile] | None = None,
) -> dict[str, Any]:
    content = await file.read()
    background_tasks.add_task(digest_of, key, file)
    return {
        "note": note,
        "filename": file.filename,
        "content_type": file.content_type,
        "size": file.size,
        "sha256": hashlib.sha256(content).hexdigest(),
        "on_disk": not file.in_memory,
        "extra": [f.filename for f in extra or []],
    }


@app.post("/upload-bytes")
def upload_bytes(
    data: Annotated[bytes, File()], name: Annotated[str, Form()] = ""
) -> dict[str, Any]:
    return {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# -- the body read by the handler itself (tests/conformance/test_uploads.py) ----------------------


@app.post("/stream-digest")
async def stream_digest(request: Request) -> dict[str, Any]:
    """Hashes the body as it arrives: no piece is kept."""
    hasher = hashlib.sha256()
    size = pieces = 0
    async for chunk in request.stream():
        if chunk:
            pieces += 1
            size += len(chunk)
            hasher.update(chunk)
    return {"size": size, "sha256": hasher.hexdigest(), "pieces": pieces}


@app.post("/stream-first")
async def stream_first(request: Request) -> int:
    """Reads the first piece only; the server must cope with the rest."""
    async for chunk in request.stream():
        return len(chunk)
    return 0


@app.post("/body-twice")
async def body_twice(request: Request) -> dict[str, Any]:
    body = await request.body()
    again = b"".join([chunk async for chunk in request.stream()])
    stream_again = "no error"
    try:
        async for _ in request.stream():
            pass
    except RuntimeError as error:  # pragma: no cover - the body is kept: no error
        stream_again = str(error)
    return {"size": len(body), "same": body == again, "stream_again": stream_again}


@app.post("/stream-consumed")
async def stream_consumed(request: Request) -> str:
    async for _ in request.stream():
        pass
    try:
        await request.body()
    except RuntimeError as error:
        return str(error)
    return "read twice"  # pragma: no cover - the failure this route is here to catch


@app.post("/request-form")
async def request_form(request: Request) -> dict[str, Any]:
    async with request.form(max_files=1, max_part_size=100) as form:
        upload = form.get("file")
        return {
            "fields": sorted(k for k, v in form.items() if isinstance(v, str)),
            "size": None if upload is None else len(await upload.read()),
            "on_disk": None if upload is None else not upload.in_memory,
        }
