"""The scenarios in Starlette: plain routes, `request.json()`, a `BackgroundTask`.

Starlette has no dependency injection, so `/items` calls the dependency by hand.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.apps._common import current_owner, record_signup_async, valid_signup


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"message": "hello"})


async def signup(request: Request) -> JSONResponse:
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not valid_signup(data):
        return JSONResponse({"detail": "invalid body"}, status_code=422)
    email = data["email"]
    return JSONResponse(
        {"status": "ok", "email": email}, background=BackgroundTask(record_signup_async, email)
    )


async def item(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    q = request.query_params.get("q")
    return JSONResponse({"item_id": item_id, "q": q, "owner": current_owner()})


app = Starlette(
    routes=[
        Route("/hello", hello, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/items/{item_id:int}", item, methods=["GET"]),
    ]
)
