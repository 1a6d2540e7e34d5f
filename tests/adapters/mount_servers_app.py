"""Apps with foreign mounts, for tests/adapters/test_mount_servers.py.

`asgi_parent` mounts a Starlette app and a raw ASGI app (served over ASGI);
`wsgi_parent` mounts a plain WSGI app (served over WSGI). `wsgi` and
`asgi_parent_as_wsgi` are built on first access, so that importing this module
never fails: gunicorn serving the second one must refuse it by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.routing import Route

from velocipy import Request, VelociPy


async def starlette_where(request: StarletteRequest) -> StarletteJSON:
    return StarletteJSON(
        {
            "path": request.scope["path"],
            "root_path": request.scope["root_path"],
            "url": str(request.url),
            "for": str(request.url_for("where")),
        }
    )


starlette_app = Starlette(routes=[Route("/where", starlette_where, name="where")])


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps({"path": scope["path"], "root_path": scope["root_path"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def legacy_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps(
        {"script_name": environ["SCRIPT_NAME"], "path_info": environ["PATH_INFO"]}
    ).encode()
    start_response("200 OK", [("content-type", "application/json")])
    return [body]


def own_routes(app: VelociPy) -> VelociPy:
    @app.get("/own")
    def own(request: Request) -> dict[str, str]:
        return {"own": request.path}

    return app


asgi_parent = own_routes(VelociPy(openapi_url=None))
asgi_parent.mount("/starlette", starlette_app)
asgi_parent.mount("/raw", raw_asgi)

wsgi_parent = own_routes(VelociPy(openapi_url=None))
wsgi_parent.mount("/legacy", legacy_wsgi, name="legacy")


def __getattr__(name: str) -> Any:
    if name == "wsgi":
        return wsgi_parent.wsgi
    if name == "asgi_parent_as_wsgi":
        return asgi_parent.wsgi
    raise AttributeError(name)
