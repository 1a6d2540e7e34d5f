"""A Starlette app (lifespan state, routes, streaming, a background task) for `velocipy run`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

DONE: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from the lifespan"}


async def item(request: Request) -> Response:
    return JSONResponse(
        {
            "id": int(request.path_params["item_id"]),
            "q": request.query_params.get("q"),
            "greeting": request.state.greeting,
        }
    )


async def echo(request: Request) -> Response:
    body = await request.body()
    return PlainTextResponse(body[::-1])


async def stream(request: Request) -> Response:
    def numbers() -> Iterator[bytes]:
        for n in range(5):
            yield b"%d\n" % n

    return StreamingResponse(numbers(), media_type="text/plain")


def slow_task(name: str) -> None:
    time.sleep(0.5)
    DONE.append(name)


async def task(request: Request) -> Response:
    name = request.query_params["name"]
    return PlainTextResponse("queued", background=BackgroundTask(slow_task, name))


async def done(request: Request) -> Response:
    return JSONResponse(DONE)


app = Starlette(
    routes=[
        Route("/items/{item_id}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/task", task, methods=["POST"]),
        Route("/done", done),
    ],
    lifespan=lifespan,
)
