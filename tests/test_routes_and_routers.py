"""Route keywords, routers, app-wide dependencies, redirects, 405, state and url_for."""

from __future__ import annotations

from typing import Annotated, Any

import pytest

from velocipy import (
    APIRouter,
    Depends,
    Header,
    HTMLResponse,
    HTTPException,
    PlainTextResponse,
    Query,
    Request,
    Response,
    VelociPy,
    status,
)
from velocipy.core import DeclarationError, NoMatchFound
from velocipy.testing import TestClient


def test_decorator_keywords_are_kept_and_applied() -> None:
    app = VelociPy()

    @app.post(
        "/items",
        status_code=status.HTTP_201_CREATED,
        tags=["items"],
        summary="Create an item",
        response_description="The item",
        responses={409: {"description": "Exists"}},
        deprecated=True,
        operation_id="create_item",
        include_in_schema=False,
        name="make",
        openapi_extra={"x-internal": True},
    )
    def create() -> dict[str, str]:
        """Create one.

        In detail.\f
        Not for the docs."""
        return {"ok": "yes"}

    @app.delete("/items/{item_id}", status_code=204)
    def remove(item_id: int) -> None:
        return None

    @app.get("/page", response_class=PlainTextResponse)
    def page() -> str:
        return "text"

    # The app's own docs routes come first, as in FastAPI: find the route by its name.
    route = next(route for route in app.routes if route.name == "make")
    info = route.info
    assert (route.status_code, route.name) == (201, "make")
    assert info.tags == ["items"]
    assert info.summary == "Create an item"
    assert info.description == "Create one.\n\nIn detail."
    assert info.response_description == "The item"
    assert info.responses == {409: {"description": "Exists"}}
    assert (info.deprecated, info.operation_id, info.include_in_schema) == (
        True,
        "create_item",
        False,
    )
    assert info.openapi_extra == {"x-internal": True}
    client = TestClient(app)
    assert client.post("/items").status_code == 201
    deleted = client.delete("/items/3")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert client.get("/page").headers["content-type"] == "text/plain; charset=utf-8"


def verify_token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid token")
    return x_token


def test_router_settings_and_router_wide_auth() -> None:
    calls: list[str] = []

    def app_wide() -> None:
        calls.append("app")

    def counted(request: Request) -> str:
        calls.append("counted")
        request.state.user = "ada"
        return "ada"

    def include_level() -> None:
        calls.append("include")

    router = APIRouter(
        prefix="/items",
        tags=["items"],
        dependencies=[Depends(verify_token), Depends(counted)],
        responses={404: {"description": "Not found"}},
        default_response_class=HTMLResponse,
        deprecated=True,
    )

    @router.get("/{item_id}", tags=["read"], responses={404: {"description": "No item"}})
    def read(item_id: int, user: Annotated[str, Depends(counted)], request: Request) -> str:
        return f"<p>{item_id} for {user} ({request.state.user})</p>"

    outer = APIRouter(prefix="/v1", tags=["v1"], include_in_schema=False)
    outer.include_router(router, dependencies=[Depends(include_level)], tags=["inner"])
    app = VelociPy(dependencies=[Depends(app_wide)])
    app.include_router(outer, prefix="/api")

    route = next(route for route in app.routes if route.path.startswith("/api/"))
    assert route.path == "/api/v1/items/{item_id}"
    assert route.info.tags == ["v1", "inner", "items", "read"]
    assert route.info.responses == {404: {"description": "No item"}}
    assert route.info.deprecated and not route.info.include_in_schema
    client = TestClient(app)
    refused = client.get("/api/v1/items/3", headers={"x-token": "wrong"})
    assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid token"})
    assert calls == ["app", "include"]  # dependencies run in order; the token stopped it
    calls.clear()
    ok = client.get("/api/v1/items/3", headers={"x-token": "secret"})
    assert ok.status_code == 200
    assert ok.text == "<p>3 for ada (ada)</p>"
    assert ok.headers["content-type"] == "text/html; charset=utf-8"
    # The router's `counted` and the handler's share one call: cached per request.
    assert calls == ["app", "include", "counted"]
    missing = client.get("/api/v1/items/3")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["header", "x-token"]


def test_app_wide_dependencies_run_before_a_trivial_handler() -> None:
    app = VelociPy(dependencies=[Depends(verify_token)])

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    client = TestClient(app)
    assert client.get("/ping").status_code == 422
    assert client.get("/ping", headers={"x-token": "secret"}).json() == "pong"


def test_trailing_slash_redirects_both_ways_and_can_be_turned_off() -> None:
    app = VelociPy()

    @app.get("/items")
    def items() -> list[int]:
        return [1]

    @app.post("/folders/")
    def folders() -> list[int]:
        return [2]

    client = TestClient(app, follow_redirects=False)
    out = client.get("/items/", params={"q": "1"})
    assert out.status_code == 307
    assert out.headers["location"] == "http://testserver/items?q=1"
    back = client.post("/folders")
    assert (back.status_code, back.headers["location"]) == (307, "http://testserver/folders/")
    assert client.get("/nothing/").status_code == 404
    followed = TestClient(app).post("/folders")  # the client follows 307 with the same method
    assert (followed.status_code, followed.json()) == (200, [2])
    off = VelociPy(redirect_slashes=False)
    off.include_router(APIRouter())

    @off.get("/items")
    def items_off() -> list[int]:
        return [1]

    assert TestClient(off).get("/items/").status_code == 404


def test_405_names_the_allowed_methods() -> None:
    app = VelociPy()

    @app.get("/things")
    def read() -> list[int]:
        return []

    @app.post("/things")
    def create() -> list[int]:
        return []

    out = TestClient(app).delete("/things")
    assert out.status_code == 405
    assert out.json() == {"detail": "Method Not Allowed"}
    assert out.headers["allow"] == "GET, HEAD, POST"


def test_state_app_and_url_for() -> None:
    app = VelociPy()
    app.state.greeting = "hi"

    @app.get("/users/{user_id}", name="user")
    def user(user_id: int, request: Request) -> dict[str, Any]:
        return {
            "greeting": request.app.state.greeting,
            "self": request.url_for("user", user_id=user_id),
            "files": request.url_for("files", rest="a/b c.txt"),
            "path": request.app.url_path_for("user", user_id=9),
        }

    @app.get("/files/{rest:path}")
    def files(rest: str) -> str:
        return rest

    out = TestClient(app).get("/users/4")
    assert out.json() == {
        "greeting": "hi",
        "self": "http://testserver/users/4",
        "files": "http://testserver/files/a/b%20c.txt",
        "path": "/users/9",
    }
    assert app.state["greeting"] == "hi"
    with pytest.raises(NoMatchFound):
        app.url_path_for("user")
    with pytest.raises(NoMatchFound):
        app.url_path_for("nobody", user_id=1)


def test_router_and_include_mistakes_fail_at_declaration() -> None:
    with pytest.raises(DeclarationError, match="Depends"):
        APIRouter(dependencies=[verify_token])  # type: ignore[list-item]
    with pytest.raises(DeclarationError, match="prefix"):
        VelociPy().include_router(APIRouter(), prefix="v1")
    with pytest.raises(DeclarationError, match="not a Response"):

        @VelociPy().get("/x", response_class=dict)
        def x() -> None: ...


def test_route_dependencies_may_set_headers_and_can_be_overridden() -> None:
    def stamp(response: Response) -> None:
        response.headers["X-Stamp"] = "router"

    router = APIRouter(dependencies=[Depends(stamp), Depends(verify_token)])

    @router.get("/stamped")
    def stamped() -> dict[str, str]:
        return {"ok": "yes"}

    app = VelociPy()
    app.include_router(router)
    client = TestClient(app)
    out = client.get("/stamped", headers={"x-token": "secret"})
    assert (out.json(), out.headers["x-stamp"]) == ({"ok": "yes"}, "router")
    app.dependency_overrides[verify_token] = lambda: "anyone"
    assert client.get("/stamped").status_code == 200  # the override reads no header


def test_a_dependency_problems_come_first_as_in_fastapi() -> None:
    def tenant(tenant: Annotated[str, Query(min_length=2)]) -> str:
        return tenant

    app = VelociPy()

    @app.get("/orders")
    def orders(quantity: int, who: Annotated[str, Depends(tenant)]) -> int:
        return quantity

    out = TestClient(app).get("/orders", params={"tenant": "a", "quantity": "x"})
    assert out.status_code == 422
    # FastAPI's order (recorded with FastAPI 0.115+): the dependency's parameter first.
    assert [problem["loc"] for problem in out.json()["detail"]] == [
        ["query", "tenant"],
        ["query", "quantity"],
    ]
