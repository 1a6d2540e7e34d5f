"""`app.mount`: VelociPy, ASGI and WSGI apps under a prefix, through the TestClient.

The same behaviour on real servers is in tests/conformance/test_mounts.py (native
mounts, every driver) and tests/adapters/test_mount_servers.py (ASGI and WSGI).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest

from velocipy import Request, VelociPy
from velocipy.core import DeclarationError, NoMatchFound
from velocipy.testing import TestClient


def make_sub(events: list[str] | None = None) -> VelociPy:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if events is not None:
            events.append("sub up")
        yield
        if events is not None:
            events.append("sub down")

    sub = VelociPy(lifespan=lifespan)

    @sub.get("/items/{item_id}")
    def item(item_id: int, request: Request) -> dict[str, Any]:
        return {
            "item_id": item_id,
            "path": request.path,
            "root_path": request.head.root_path,
            "url": request.url,
            "other": request.url_for("item", item_id=7),
        }

    @sub.middleware("http")
    async def tag(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-sub"] = "yes"
        return response

    @sub.exception_handler(KeyError)
    def missing(request: Request, error: KeyError) -> Any:
        from velocipy import JSONResponse

        return JSONResponse({"sub": "handled"}, 409)

    @sub.get("/boom")
    def boom() -> None:
        raise KeyError("x")

    return sub


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = f"{scope['path']}|{scope['root_path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi_echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()]


def test_a_mounted_velocipy_app_keeps_its_routes_middleware_and_handlers() -> None:
    events: list[str] = []
    app = VelociPy()
    app.mount("/api", make_sub(events), name="api")
    with TestClient(app) as client:
        assert events == ["sub up"]
        response = client.get("/api/items/3")
        assert response.status_code == 200
        assert response.headers["x-sub"] == "yes"
        assert response.json() == {
            "item_id": 3,
            "path": "/items/3",
            "root_path": "/api",
            "url": "http://testserver/api/items/3",
            "other": "http://testserver/api/items/7",
        }
        assert client.get("/api/boom").json() == {"sub": "handled"}
        assert client.get("/api/nothing").status_code == 404
        assert client.get("/elsewhere").status_code == 404
    assert events == ["sub up", "sub down"]


def test_routes_come_before_mounts_and_the_bare_prefix_is_redirected() -> None:
    app = VelociPy()

    @app.get("/api/items/1")
    def own() -> str:
        return "parent"

    app.mount("/api", make_sub())
    client = TestClient(app)
    assert client.get("/api/items/1").json() == "parent"
    assert client.get("/api/items/2").json()["item_id"] == 2
    redirect = client.get("/api", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "http://testserver/api/"


def test_a_root_mount_takes_what_no_route_takes() -> None:
    app = VelociPy()

    @app.get("/hello")
    def hello() -> str:
        return "hi"

    app.mount("/", make_sub())
    client = TestClient(app)
    assert client.get("/hello").json() == "hi"
    assert client.get("/items/4").json()["root_path"] == ""


def test_url_path_for_goes_through_mounts() -> None:
    app = VelociPy()
    app.mount("/api", make_sub(), name="api")
    app.mount("/static", asgi_echo, name="static")
    assert app.url_path_for("api:item", item_id=5) == "/api/items/5"
    assert app.url_path_for("static", path="/css/a.css") == "/static/css/a.css"
    with pytest.raises(NoMatchFound):
        app.url_path_for("api:nothing")
    unnamed = VelociPy()
    unnamed.mount("/v1", make_sub())
    assert unnamed.url_path_for("item", item_id=1) == "/v1/items/1"


def test_an_asgi_mount_gets_starlettes_scope() -> None:
    app = VelociPy()

    @app.get("/own")
    def own() -> str:
        return "own"

    app.mount("/asgi", asgi_echo)
    assert app.needs_asgi
    client = TestClient(app)
    # `path` stays whole, the prefix goes onto `root_path` (Starlette's Mount).
    assert client.get("/asgi/a/b").text == "/asgi/a/b|/asgi"
    assert client.get("/own").json() == "own"
    assert client.get("/other").status_code == 404


def test_an_asgi_mount_in_a_mounted_app_is_reached() -> None:
    sub = VelociPy()
    sub.mount("/deep", asgi_echo)
    app = VelociPy()
    app.mount("/outer", sub)
    assert app.needs_asgi
    assert TestClient(app).get("/outer/deep/x").text == "/outer/deep/x|/outer/deep"


def test_a_wsgi_mount_moves_its_prefix_to_script_name() -> None:
    app = VelociPy()
    app.mount("/legacy", wsgi_echo)
    assert not app.needs_asgi
    client = TestClient(app)
    assert client.get("/legacy/a/b").text == "/legacy|/a/b"


def test_mounts_a_serving_path_cannot_serve_are_refused_by_name() -> None:
    app = VelociPy()
    app.mount("/asgi", asgi_echo)
    with pytest.raises(DeclarationError, match=r"mount '/asgi' .*asgi_echo.*cannot be served"):
        app.wsgi  # noqa: B018
    other = VelociPy()
    other.mount("/legacy", wsgi_echo, name="legacy")
    with pytest.raises(DeclarationError, match=r"mount '/legacy' \('legacy'\).*over ASGI"):
        other.check_servable("asgi")


def test_asgi_serving_reports_a_wsgi_mount_as_a_failed_startup() -> None:
    import anyio

    app = VelociPy()
    app.mount("/legacy", wsgi_echo)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, {"type": "lifespan"}, receive, send)
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "mount '/legacy'" in sent[0]["message"]


def test_mount_declarations_are_checked() -> None:
    app = VelociPy()
    with pytest.raises(DeclarationError, match="must start with '/'"):
        app.mount("api", make_sub())
    with pytest.raises(DeclarationError, match="path parameters"):
        app.mount("/users/{user_id}", make_sub())
    with pytest.raises(DeclarationError, match="not an application"):
        app.mount("/x", 42)
    with pytest.raises(DeclarationError, match="cannot tell"):
        app.mount("/x", lambda: None)
    with pytest.raises(DeclarationError, match="in itself"):
        app.mount("/self", app)
    app.mount("/api", make_sub())
    with pytest.raises(DeclarationError, match="at that path already"):
        app.mount("/api/", make_sub())


def test_routes_lists_mounts_after_routes() -> None:
    app = VelociPy(openapi_url=None)

    @app.get("/a")
    def a() -> None: ...

    app.mount("/m", asgi_echo, name="m")
    kinds = [type(route).__name__ for route in app.routes]
    assert kinds == ["Route", "Mount"]
    assert app.routes[-1].name == "m"  # type: ignore[union-attr]


def test_a_mounted_apps_tasks_count_in_the_parents_registry() -> None:
    from velocipy import BackgroundTasks

    ran: list[str] = []
    sub = VelociPy()

    @sub.post("/work")
    def work(tasks: BackgroundTasks) -> str:
        tasks.add_task(ran.append, "task")
        return "ok"

    app = VelociPy()
    app.mount("/sub", sub)
    assert sub.tasks is app.tasks
    client = TestClient(app)
    assert client.post("/sub/work").json() == "ok"
    assert ran == ["task"]
    assert app.tasks.count("succeeded") == 1


def test_the_built_in_server_refuses_a_wsgi_mount_by_name_and_hosts_an_asgi_one() -> None:
    from velocipy.server._server import Server

    app = VelociPy()
    app.mount("/legacy", wsgi_echo, name="legacy")
    with pytest.raises(DeclarationError, match=r"mount '/legacy' \('legacy'\).*by this server"):
        Server(app)
    asgi = VelociPy()
    asgi.mount("/asgi", asgi_echo)
    assert Server(asgi).asgi is not None  # served through the app's ASGI entry


def test_a_mounted_apps_docs_point_under_its_mount() -> None:
    sub = VelociPy(title="Admin")

    @sub.get("/users")
    def users() -> list[str]:
        return []

    app = VelociPy()
    app.mount("/admin", sub)
    client = TestClient(app)
    schema = client.get("/admin/openapi.json").json()
    assert schema["info"]["title"] == "Admin"
    assert list(schema["paths"]) == ["/users"]
    assert schema["servers"] == [{"url": "/admin"}]  # FastAPI's: "Try it out" goes under it
    assert "/admin/openapi.json" in client.get("/admin/docs").text
    assert "/admin/docs/assets/" in client.get("/admin/docs").text
    assert "/admin/openapi.json" in client.get("/admin/redoc").text
    # The parent's own pages are unchanged.
    assert "servers" not in client.get("/openapi.json").json()
    assert (
        '"/openapi.json"' in client.get("/docs").text
        or "'/openapi.json'" in client.get("/docs").text
    )


def test_a_router_carries_its_mounts_under_its_prefixes() -> None:
    from velocipy import APIRouter

    inner = APIRouter(prefix="/v1")
    inner.mount("/raw", asgi_echo, name="raw")
    outer = APIRouter()
    outer.include_router(inner, prefix="/api")
    app = VelociPy()
    app.include_router(outer, prefix="/svc")
    assert [mount.path for mount in app.mounts] == ["/svc/api/v1/raw"]
    assert TestClient(app).get("/svc/api/v1/raw/x").text == "/svc/api/v1/raw/x|/svc/api/v1/raw"
    assert app.url_path_for("raw", path="a") == "/svc/api/v1/raw/a"
    with pytest.raises(DeclarationError, match="must start with '/'"):
        APIRouter().mount("nope", asgi_echo)


def test_a_mounted_app_with_asgi_middleware_is_served_through_its_asgi_entry() -> None:
    class Stamp:
        def __init__(self, app: Any) -> None:
            self.app = app

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            async def stamped(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
                await send(message)

            await self.app(scope, receive, stamped)

    events: list[str] = []
    sub = make_sub(events)
    app = VelociPy()
    app.mount("/api", sub)
    sub.add_middleware(Stamp)  # added after mounting: still found, never skipped
    assert app.needs_asgi
    with TestClient(app) as client:
        response = client.get("/api/items/2")
        assert response.headers["x-stamp"] == "1"
        assert response.json()["path"] == "/items/2"
        assert response.json()["root_path"] == "/api"
    assert events == ["sub up", "sub down"]  # its lifespan still runs with the parent's
    with pytest.raises(DeclarationError, match="a VelociPy app with ASGI middleware"):
        app.check_servable("wsgi")


def test_the_async_transport_serves_asgi_and_wsgi_mounts() -> None:
    import anyio
    import httpx

    from velocipy.testing import AsyncCoreTransport

    app = VelociPy()
    app.mount("/legacy", wsgi_echo)
    app.mount("/api", make_sub())
    asgi_app = VelociPy()
    asgi_app.mount("/raw", asgi_echo)

    async def main() -> list[str]:
        texts = []
        for target, path in ((app, "/legacy/a"), (app, "/api/items/1"), (asgi_app, "/raw/b")):
            transport = AsyncCoreTransport(target)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                texts.append((await c.get(path)).text)
        return texts

    legacy, api, raw = anyio.run(main)
    assert legacy == "/legacy|/a"
    assert '"root_path":"/api"' in api.replace(" ", "")
    assert raw == "/raw/b|/raw"
