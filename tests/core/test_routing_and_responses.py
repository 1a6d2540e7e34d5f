"""Routing (404/405/HEAD, literal over template, routers), responses and exception handlers."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import pytest

from tests.core.handdrive import run_coroutine, serve
from velocipy.core import (
    APIRouter,
    Application,
    DeclarationError,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Request,
    RequestValidationError,
    Response,
    StreamingResponse,
    encode_json,
)


def test_404_and_405_with_allow() -> None:
    app = Application()
    app.add_api_route("/x", lambda: 1, methods=["GET", "POST"])
    missing = serve(app, "GET", "/nope")
    assert missing.status == 404 and missing.json() == {"detail": "Not Found"}
    wrong = serve(app, "DELETE", "/x")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST"


def test_literal_route_wins_over_a_template_declared_first() -> None:
    app = Application()

    @app.get("/users/{user_id}")
    def by_id(user_id: int) -> int:
        return user_id

    @app.get("/users/me")
    def me() -> str:
        return "me"

    @app.delete("/users/{user_id}")
    def remove(user_id: int) -> str:
        return f"removed {user_id}"

    assert serve(app, "GET", "/users/me").json() == "me"
    assert serve(app, "GET", "/users/3").json() == 3
    assert serve(app, "DELETE", "/users/3").json() == "removed 3"
    assert serve(app, "PUT", "/users/me").headers["allow"] == "DELETE, GET, HEAD"


def test_head_is_answered_by_get_without_body_but_with_length() -> None:
    app = Application()
    app.add_api_route("/x", lambda: {"a": 1})
    out = serve(app, "HEAD", "/x")
    assert out.status == 200 and out.respond.body == b""
    assert out.headers["content-length"] == "7"


def test_routers_nest_with_prefixes() -> None:
    app = Application()
    api = APIRouter(prefix="/api")
    v1 = APIRouter(prefix="/v1")

    @v1.get("/items/{i}")
    def item(i: int) -> int:
        return i

    @v1.post("/items", status_code=201)
    def create() -> str:
        return "made"

    api.include_router(v1)
    app.include_router(api, prefix="/root")
    assert serve(app, "GET", "/root/api/v1/items/4").json() == 4
    created = serve(app, "POST", "/root/api/v1/items")
    assert created.status == 201 and created.json() == "made"
    with pytest.raises(DeclarationError):
        APIRouter(prefix="trailing/")


def test_status_code_without_body() -> None:
    app = Application()
    app.add_api_route("/x", lambda: None, methods=["DELETE"], status_code=204)
    out = serve(app, "DELETE", "/x")
    assert out.status == 204 and out.respond.body == b""
    assert "content-length" not in out.headers


def test_response_classes() -> None:
    app = Application()

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse("héllo", headers={"X-A": "1"})

    @app.get("/html")
    def html() -> HTMLResponse:
        response = HTMLResponse("<b>x</b>", status_code=201)
        response.set_cookie("sid", "a b", max_age=60, httponly=True, secure=True, domain="ex")
        return response

    @app.get("/redirect")
    def redirect() -> RedirectResponse:
        return RedirectResponse("/target path")

    @app.get("/raw")
    def raw() -> Response:
        return Response(b"\x00\x01", media_type="application/octet-stream")

    @app.get("/custom", response_class=HTMLResponse)
    def custom() -> str:
        return "<i>custom</i>"

    out = serve(app, "GET", "/text")
    assert out.respond.body == "héllo".encode()
    assert out.headers["content-type"] == "text/plain; charset=utf-8"
    assert out.headers["x-a"] == "1"
    html_out = serve(app, "GET", "/html")
    assert html_out.status == 201
    # Starlette's format (http.cookies): a value with a space is quoted.
    assert html_out.headers["set-cookie"] == (
        'sid="a b"; Domain=ex; HttpOnly; Max-Age=60; Path=/; SameSite=lax; Secure'
    )
    redirect_out = serve(app, "GET", "/redirect")
    assert redirect_out.status == 307
    assert redirect_out.headers["location"] == "/target%20path"
    assert serve(app, "GET", "/raw").respond.body == b"\x00\x01"
    assert serve(app, "GET", "/custom").headers["content-type"] == "text/html; charset=utf-8"


def test_response_content_must_be_text_or_bytes() -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        Response(123)


def test_set_header_replaces() -> None:
    response = JSONResponse({"a": 1})
    response.set_header("Content-Type", "application/vnd.x+json")
    assert response.headers["content-type"] == "application/vnd.x+json"


def test_streaming_response_hands_the_iterator_to_the_adapter() -> None:
    app = Application()

    @app.get("/sync")
    def sync_stream() -> StreamingResponse:
        return StreamingResponse(iter(["a", b"b"]), media_type="text/plain")

    @app.get("/async")
    def async_stream() -> StreamingResponse:
        async def chunks() -> Any:
            yield "x"
            yield b"y"

        return StreamingResponse(chunks())

    out = serve(app, "GET", "/sync")
    stream = out.respond.stream
    assert stream is not None and not stream.is_async
    assert list(stream.iterator) == [b"a", b"b"]  # type: ignore[arg-type]
    assert "content-length" not in out.headers
    async_out = serve(app, "GET", "/async")
    astream = async_out.respond.stream
    assert astream is not None and astream.is_async

    async def collect() -> list[bytes]:
        return [chunk async for chunk in astream.iterator]  # type: ignore[union-attr]

    assert run_coroutine(collect()) == [b"x", b"y"]
    assert serve(app, "HEAD", "/sync").respond.stream is None


class Kind(enum.Enum):
    A = "a"


@dataclasses.dataclass
class Point:
    x: int


def test_json_encoding_of_rich_values() -> None:
    value = {
        "when": datetime.date(2026, 1, 2),
        "id": uuid.UUID(int=1),
        "amount": decimal.Decimal("1.5"),
        "kind": Kind.A,
        "set": {1},
        "point": Point(2),
        "bytes": b"b",
        "text": "é",
    }
    assert encode_json(value) == (
        b'{"when":"2026-01-02","id":"00000000-0000-0000-0000-000000000001","amount":"1.5",'
        b'"kind":"a","set":[1],"point":{"x":2},"bytes":"b","text":"\xc3\xa9"}'
    )
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode_json(object())
    with pytest.raises(ValueError):
        encode_json(float("nan"))


def test_exception_handlers_by_class_and_status(caplog: pytest.LogCaptureFixture) -> None:
    app = Application()

    class Teapot(Exception):
        pass

    @app.exception_handler(Teapot)
    async def teapot(request: Request, exc: Teapot) -> JSONResponse:
        return JSONResponse({"tea": request.path}, status_code=418)

    @app.exception_handler(404)
    def not_found(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse(f"nothing at {request.path}", status_code=404)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> dict[str, int]:
        return {"problems": len(exc.errors())}

    class Boom(Exception):
        pass

    @app.exception_handler(Boom)
    def broken(request: Request, exc: Boom) -> None:
        raise RuntimeError("handler of handlers failed")

    @app.get("/tea")
    def tea() -> None:
        raise Teapot()

    @app.get("/n")
    def needs(n: int) -> int:
        return n

    @app.get("/boom")
    def boom() -> None:
        raise Boom()

    assert serve(app, "GET", "/tea").status == 418
    assert serve(app, "GET", "/tea").json() == {"tea": "/tea"}
    assert serve(app, "GET", "/zzz").respond.body == b"nothing at /zzz"
    invalid_out = serve(app, "GET", "/n")
    assert invalid_out.json() == {"problems": 1}
    broken_out = serve(app, "GET", "/boom")
    assert broken_out.status == 500
    assert "Exception handler" in caplog.text
    with pytest.raises(DeclarationError):
        app.add_exception_handler("nope", teapot)  # type: ignore[arg-type]


def test_request_object() -> None:
    app = Application()
    seen: dict[str, Any] = {}

    @app.get("/r/{x}")
    def handler(request: Request) -> None:
        seen.update(
            url=request.url,
            params=dict(request.query_params),
            many=request.query_params.getlist("a"),
            headers=request.headers.getlist("x-h"),
            cookies=request.cookies,
            path_params=request.path_params,
            client=request.client,
            repr=repr(request),
        )

    serve(
        app,
        "GET",
        "/r/1",
        query=b"a=1&a=2",
        headers=[(b"host", b"ex.com"), (b"x-h", b"1"), (b"X-H", b"2"), (b"cookie", b"c=v; bad")],
    )
    assert seen == {
        "url": "http://ex.com/r/1?a=1&a=2",
        "params": {"a": "2"},
        "many": ["1", "2"],
        "headers": ["1", "2"],
        "cookies": {"c": "v"},
        "path_params": {"x": "1"},
        "client": None,
        "repr": "<Request GET /r/1>",
    }


def test_lifespan_and_hooks_run_in_order() -> None:
    import contextlib

    log: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Application) -> Any:
        log.append("enter")
        yield {"db": "conn"}
        log.append("exit")

    app = Application(lifespan=lifespan, on_startup=[lambda: log.append("startup")])

    @app.on_event("shutdown")
    async def bye() -> None:
        log.append("shutdown")

    async def run() -> None:
        async with app.lifespan_context():
            log.append("serving")

    run_coroutine(run())
    assert log == ["enter", "startup", "serving", "shutdown", "exit"]
    assert app.state == {"db": "conn"}
    with pytest.raises(DeclarationError):
        app.on_event("sometime")
