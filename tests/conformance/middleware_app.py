"""The app the middleware conformance cases run on: user and built-in middleware together.

From the outside in: TrustedHost, CORS, GZip, `outer` (async), `inner` (sync).
Each path under `/mw/` exercises one behaviour; tasks and middleware record what
they did in `EVENTS`, read back through `GET /_events/{key}` on every driver.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from velocipy import (
    BackgroundTasks,
    JSONResponse,
    PlainTextResponse,
    Request,
    Response,
    StreamingResponse,
    VelociPy,
)
from velocipy.middleware import CORSMiddleware, GZipMiddleware, TrustedHostMiddleware

app = VelociPy()

EVENTS: dict[str, list[str]] = defaultdict(list)
BIG_TEXT = "VelociPy middleware " * 100


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # `gunicorn tests.conformance.middleware_app:wsgi`
        return app.wsgi
    raise AttributeError(name)


def record(key: str, name: str, sleep: float = 0.0) -> None:
    if sleep:
        time.sleep(sleep)
    EVENTS[key].append(name)


def key_of(request: Request) -> str:
    return request.path.rsplit("/", 1)[-1]


@app.middleware("http")
def inner(request: Request, call_next: Callable[[Request], Response]) -> Response:
    """Sync middleware: extends the trail, wraps a stream, tags the response."""
    if request.path == "/mw/inner-short":
        return PlainTextResponse("inner answered", 203)
    if request.path.startswith("/mw/interrupt-before/"):
        raise KeyboardInterrupt(f"sync middleware {key_of(request)}")
    request.state.trail.append("inner")
    response = call_next(request)
    if request.path == "/mw/stream-upper":
        chunks = response.body_iterator

        async def upper() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                yield chunk.upper()

        response.body_iterator = upper()
    response.headers.append("x-trail", "inner")
    return response


@app.middleware("http")
async def outer(request: Request, call_next: Any) -> Response:
    """Async middleware: short-circuits, fails on purpose, edits status and headers."""
    path = request.path
    if path == "/mw/short":
        return JSONResponse({"short": True}, status_code=202, headers={"x-short": "yes"})
    if path.startswith("/mw/boom-before"):
        raise RuntimeError("middleware failed before call_next on purpose")
    if path.startswith("/mw/exit-before/"):
        sys.exit(f"async middleware {key_of(request)}")
    request.state.trail = ["outer"]
    if path == "/mw/body-seen":  # the middleware reads the body; the handler still gets it
        request.state.seen = len(await request.body())
    response = await call_next(request)
    if path.startswith("/mw/tasks/") or path.startswith("/mw/slow-task/"):
        EVENTS[key_of(request)].append("middleware-after-call-next")
    if path.startswith("/mw/boom-after"):
        raise RuntimeError("middleware failed after call_next on purpose")
    if path == "/mw/teapot":
        response.status_code = 418
    response.headers.append("x-trail", "outer")
    return response


app.add_middleware(GZipMiddleware, minimum_size=500)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["https://ui.example"],
    allow_methods=["GET", "POST"],
    allow_headers=["x-token"],
    expose_headers=["x-trail"],
)
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "testserver"])


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.get("/_events/{key}")
async def events(key: str) -> list[str]:
    return EVENTS.get(key, [])


@app.post("/mw/stream-body")
async def stream_body(request: Request) -> dict[str, Any]:
    """Streams the body through both HTTP middleware and the built-in ones."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size, "trail": request.state.trail}


@app.post("/mw/body-seen")
async def body_seen(item: dict[str, Any], request: Request) -> dict[str, Any]:
    return {"seen": request.state.seen, "item": item, "stream": len(await request.body())}


@app.get("/mw/trail")
def trail(request: Request) -> dict[str, Any]:
    return {"trail": request.state.trail}


@app.get("/mw/teapot")
async def teapot() -> str:
    return "short and stout"


@app.get("/mw/big")
async def big() -> PlainTextResponse:
    return PlainTextResponse(BIG_TEXT)


def numbered_chunks() -> Iterator[str]:
    for index in range(3):
        yield f"chunk{index}\n"


@app.get("/mw/stream")
def stream() -> StreamingResponse:
    return StreamingResponse(numbered_chunks(), media_type="text/plain")


@app.get("/mw/stream-upper")
def stream_upper() -> StreamingResponse:
    return StreamingResponse(numbered_chunks(), media_type="text/plain")


@app.get("/mw/big-stream")
async def big_stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[str]:
        for _ in range(5):
            yield BIG_TEXT

    return StreamingResponse(chunks(), media_type="text/plain")


@app.post("/mw/tasks/{key}")
async def tasks(key: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    EVENTS[key].append("handler")
    background_tasks.add_task(record, key, "task-1")
    background_tasks.add_task(record, key, "task-2")
    return {"key": key}


@app.post("/mw/slow-task/{key}")
async def slow_task(key: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(record, key, "slow-task", 1.5)
    return {"key": key}


@app.post("/mw/boom-after/{key}")
async def boom_after(key: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    EVENTS[key].append("handler")
    background_tasks.add_task(record, key, "success-task")
    background_tasks.add_task(record, key, "error-task").with_options(run_on="error")
    background_tasks.add_task(record, key, "always-task").with_options(run_on="always")
    return {"key": key}


@app.post("/mw/boom-before/{key}")
async def boom_before(key: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    EVENTS[key].append("handler")  # never reached: the middleware fails first
    background_tasks.add_task(record, key, "never")
    return {"key": key}


@app.get("/mw/handler-crash/{key}")
def handler_crash(key: str, background_tasks: BackgroundTasks) -> None:
    background_tasks.add_task(record, key, "never")
    raise RuntimeError("handler crashed on purpose")
