"""The app the mount conformance cases run on: a VelociPy app and `StaticFiles` mounted.

`/sub/...` is a VelociPy app with its own middleware, lifespan and background
tasks; `/static/...` and `/site/...` serve a folder written at import (plain and
HTML mode). The parent has middleware of its own (CORS and an HTTP middleware),
which wraps the mounts as it wraps its routes. Every driver serves it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from velocipy import BackgroundTasks, Request, Response, VelociPy
from velocipy.middleware import CORSMiddleware
from velocipy.staticfiles import StaticFiles

EVENTS: dict[str, list[str]] = defaultdict(list)

#: What the static folder holds (written into a fresh temporary folder at import).
FILES = {
    "hello.txt": "hello, static\n",
    "css/app.css": "body { color: red }\n",
    "index.html": "<h1>home</h1>",
    "docs/index.html": "<h1>docs</h1>",
    "404.html": "<h1>nothing here</h1>",
}
BIG = "0123456789abcdef" * 16384  # 256 KiB: streamed from disk in several chunks
SECRET = "top secret"


def _write_site() -> str:
    base = tempfile.mkdtemp(prefix="velocipy-static-")
    site = os.path.join(base, "site")
    for name, text in {**FILES, "big.txt": BIG}.items():
        path = os.path.join(site, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as file:
            file.write(text)
    with open(os.path.join(base, "secret.txt"), "w") as file:
        file.write(SECRET)
    os.symlink(os.path.join(base, "secret.txt"), os.path.join(site, "leak.txt"))
    return site


SITE = _write_site()


@contextlib.asynccontextmanager
async def sub_lifespan(app: Any) -> AsyncIterator[dict[str, str]]:
    yield {"started": "by the parent's lifespan"}


sub = VelociPy(lifespan=sub_lifespan, openapi_url=None)


@sub.middleware("http")
async def sub_tag(request: Request, call_next: Callable[..., Any]) -> Response:
    response: Response = await call_next(request)
    response.headers["x-sub"] = "yes"
    return response


@sub.get("/where")
def where(request: Request) -> dict[str, Any]:
    return {
        "path": request.path,
        "root_path": request.head.root_path,
        "url": request.url,
        "started": request.app.state.started,
    }


@sub.post("/work/{key}")
def work(key: str, tasks: BackgroundTasks) -> str:
    tasks.add_task(_record, key, "task")
    EVENTS[key].append("handler")
    return "accepted"


def _record(key: str, name: str) -> None:
    time.sleep(0.05)
    EVENTS[key].append(name)


app = VelociPy(openapi_url=None)


@app.middleware("http")
async def parent_tag(request: Request, call_next: Callable[..., Any]) -> Response:
    response: Response = await call_next(request)
    response.headers["x-parent"] = "yes"
    return response


app.add_middleware(CORSMiddleware, allow_origins=["https://ui.example"], allow_methods=["*"])


@app.get("/_events/{key}")
def events(key: str) -> list[str]:
    return EVENTS[key]


app.mount("/sub", sub, name="sub")
app.mount("/static", StaticFiles(directory=SITE), name="static")
app.mount("/site", StaticFiles(directory=SITE, html=True), name="site")


def __getattr__(name: str) -> Any:
    if name == "wsgi":  # `gunicorn tests.conformance.mount_app:wsgi`
        return app.wsgi
    raise AttributeError(name)
