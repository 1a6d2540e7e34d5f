"""GET /hello with and without middleware, in VelociPy and FastAPI, for bench/middleware_cost.py.

Per framework three apps answer the same `{"message": "hello"}`: `plain`
(no middleware), `http` (one `@app.middleware("http")` that sets a header on
the way out, as users write them) and `cors` (the framework's CORSMiddleware
with one allowed origin; the requests carry that `Origin`). The cost of a
middleware is the difference between its app and `plain`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ORIGIN = "https://ui.example"


def velocipy_apps() -> dict[str, Any]:
    from velocipy import VelociPy
    from velocipy.middleware import CORSMiddleware

    return _apps(lambda: VelociPy(openapi_url=None), CORSMiddleware)


def fastapi_apps() -> dict[str, Any]:
    from fastapi import FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    return _apps(lambda: FastAPI(openapi_url=None), CORSMiddleware)


def _apps(new_app: Callable[[], Any], cors: Any) -> dict[str, Any]:
    """The three apps, written the same way in both frameworks (their APIs agree here)."""
    apps: dict[str, Any] = {}
    for kind in ("plain", "http", "cors"):
        app = new_app()

        @app.get("/hello")  # type: ignore[untyped-decorator]
        async def hello() -> dict[str, str]:
            return {"message": "hello"}

        if kind == "http":

            @app.middleware("http")  # type: ignore[untyped-decorator]
            async def tag(request: Any, call_next: Any) -> Any:
                response = await call_next(request)
                response.headers["x-mw"] = "1"
                return response

        elif kind == "cors":
            app.add_middleware(cors, allow_origins=[ORIGIN])
        apps[kind] = app
    return apps


def __getattr__(name: str) -> Any:
    # `uvicorn bench.apps.middleware_apps:velocipy_http`: each app built only when asked
    # for, so that a missing FastAPI does not stop the VelociPy ones.
    framework, _, kind = name.partition("_")
    if framework == "velocipy" and kind in ("plain", "http", "cors"):
        return velocipy_apps()[kind]
    if framework == "fastapi" and kind in ("plain", "http", "cors"):
        return fastapi_apps()[kind]
    raise AttributeError(name)
