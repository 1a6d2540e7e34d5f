"""Middleware through the public API, in-process: the built-ins' options, the order and
errors of user middleware, and the rules for ASGI middleware. The same behaviours on
real servers are in tests/conformance/test_middleware.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from velocipy import (
    BackgroundTasks,
    HTTPException,
    PlainTextResponse,
    Request,
    Response,
    StreamingResponse,
    VelociPy,
)
from velocipy.core import DeclarationError
from velocipy.middleware import (
    BaseHTTPMiddleware,
    CORSMiddleware,
    GZipMiddleware,
    HTTPSRedirectMiddleware,
    TrustedHostMiddleware,
)
from velocipy.testing import AsyncCoreTransport, TestClient

TEXT = "compress me please " * 100


def make_app(*middleware: tuple[Any, dict[str, Any]]) -> VelociPy:
    app = VelociPy()

    @app.get("/text")
    def text() -> PlainTextResponse:
        return PlainTextResponse(TEXT)

    @app.get("/small")
    def small() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/echo")
    async def echo(data: dict[str, Any]) -> dict[str, Any]:
        return data

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([TEXT, TEXT]), media_type="text/plain")

    @app.get("/png")
    def png() -> Response:
        return Response(b"\x89PNG" + b"0" * 1000, media_type="image/png")

    @app.get("/encoded")
    def encoded() -> Response:
        return Response(b"x" * 1000, headers={"content-encoding": "br"}, media_type="text/plain")

    for cls, options in middleware:
        app.add_middleware(cls, **options)
    return app


# -- CORS ------------------------------------------------------------------------------------


def preflight(client: TestClient, origin: str, method: str = "GET", **headers: str) -> Any:
    return client.options(
        "/small",
        headers={"origin": origin, "access-control-request-method": method, **headers},
    )


def test_cors_allow_all_origins_answers_with_a_star() -> None:
    client = TestClient(make_app((CORSMiddleware, {"allow_origins": ["*"]})))
    answer = preflight(client, "https://any.example")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    simple = client.get("/small", headers={"origin": "https://any.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in simple.headers


def test_cors_with_credentials_names_the_origin_never_a_star() -> None:
    app = make_app((CORSMiddleware, {"allow_origins": ["*"], "allow_credentials": True}))
    client = TestClient(app)
    answer = preflight(client, "https://any.example")
    assert answer.headers["access-control-allow-origin"] == "https://any.example"
    assert answer.headers["access-control-allow-credentials"] == "true"
    simple = client.get("/small", headers={"origin": "https://any.example"})
    assert simple.headers["access-control-allow-origin"] == "https://any.example"
    assert simple.headers["access-control-allow-credentials"] == "true"
    assert simple.headers["vary"] == "Origin"


def test_cors_regex_origins_match_in_full() -> None:
    options = {"allow_origin_regex": r"https://.*\.example\.org", "allow_methods": ["*"]}
    client = TestClient(make_app((CORSMiddleware, options)))
    assert preflight(client, "https://app.example.org", "PATCH").status_code == 200
    refused = preflight(client, "https://app.example.org.evil.com")
    assert refused.status_code == 400 and refused.text == "Disallowed CORS origin"
    ok = client.get("/small", headers={"origin": "https://a.example.org"})
    assert ok.headers["access-control-allow-origin"] == "https://a.example.org"


def test_cors_preflight_checks_requested_headers() -> None:
    options = {"allow_origins": ["https://ui.example"], "allow_headers": ["X-Token"]}
    client = TestClient(make_app((CORSMiddleware, options)))
    fine = preflight(
        client, "https://ui.example", **{"access-control-request-headers": "x-token, accept"}
    )
    assert fine.status_code == 200
    assert fine.headers["access-control-allow-headers"] == (
        "Accept, Accept-Language, Content-Language, Content-Type, X-Token"
    )
    bad = preflight(client, "https://ui.example", **{"access-control-request-headers": "x-other"})
    assert bad.status_code == 400 and bad.text == "Disallowed CORS headers"
    star = TestClient(make_app((CORSMiddleware, {"allow_origins": ["*"], "allow_headers": ["*"]})))
    mirrored = preflight(star, "https://x.example", **{"access-control-request-headers": "x-a"})
    assert mirrored.headers["access-control-allow-headers"] == "x-a"


def test_cors_leaves_plain_options_requests_and_other_origins_alone() -> None:
    client = TestClient(make_app((CORSMiddleware, {"allow_origins": ["https://ui.example"]})))
    plain = client.options("/small")  # no Origin: not a preflight, the app answers (405)
    assert plain.status_code == 405
    no_origin = client.get("/small")
    assert "access-control-allow-origin" not in no_origin.headers
    assert no_origin.headers["vary"] == "Origin"


def test_cors_merges_with_headers_the_app_set_itself() -> None:
    app = VelociPy()

    @app.get("/own")
    def own() -> Response:
        headers = {"vary": "Accept-Encoding", "access-control-allow-origin": "https://stale"}
        return Response(b"x", headers=headers, media_type="text/plain")

    app.add_middleware(CORSMiddleware, allow_origins=["https://ui.example"])
    client = TestClient(app)
    answer = client.get("/own", headers={"origin": "https://ui.example"})
    assert answer.headers["vary"] == "Accept-Encoding, Origin"
    assert answer.headers.get_list("access-control-allow-origin") == ["https://ui.example"]
    other = client.get("/own", headers={"origin": "https://evil.example"})
    assert other.headers.get_list("access-control-allow-origin") == ["https://stale"]


def test_cors_refuses_string_options() -> None:
    with pytest.raises(TypeError, match="list of strings"):
        CORSMiddleware(allow_origins="https://ui.example")  # type: ignore[arg-type]


# -- GZip ------------------------------------------------------------------------------------


def test_gzip_whole_body() -> None:
    client = TestClient(make_app((GZipMiddleware, {"minimum_size": 100})))
    response = client.get("/text", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert int(response.headers["content-length"]) < len(TEXT) // 5
    assert response.text == TEXT


def test_gzip_only_when_accepted_but_vary_always() -> None:
    client = TestClient(make_app((GZipMiddleware, {})))
    response = client.get("/text", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.text == TEXT


def test_gzip_leaves_small_excluded_and_encoded_bodies_alone() -> None:
    client = TestClient(make_app((GZipMiddleware, {"minimum_size": 500})))
    gz = {"accept-encoding": "gzip"}
    small = client.get("/small", headers=gz)
    assert "content-encoding" not in small.headers and "vary" not in small.headers
    png = client.get("/png", headers=gz)
    assert "content-encoding" not in png.headers
    encoded = client.get("/encoded", headers=gz)
    assert encoded.headers["content-encoding"] == "br"  # never compressed twice
    assert encoded.headers["content-length"] == "1000"


def test_gzip_streams_chunk_by_chunk() -> None:
    app = make_app((GZipMiddleware, {}))
    response = TestClient(app).get("/stream", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == TEXT * 2


# -- hosts and HTTPS -------------------------------------------------------------------------


def test_trusted_host_wildcards_and_www_redirect() -> None:
    options = {"allowed_hosts": ["*.example.com", "www.example.org"]}
    app = make_app((TrustedHostMiddleware, options))
    client = TestClient(app, base_url="http://api.example.com")
    assert client.get("/small").status_code == 200
    refused = TestClient(app, base_url="http://evil.com").get("/small")
    assert refused.status_code == 400 and refused.text == "Invalid host header"
    redirected = TestClient(app, base_url="http://example.org").get(
        "/small?x=1", follow_redirects=False
    )
    assert redirected.status_code == 307
    assert redirected.headers["location"] == "http://www.example.org/small?x=1"
    with pytest.raises(ValueError, match="wildcard"):
        TrustedHostMiddleware(allowed_hosts=["api.*.com"])


def test_https_redirect_keeps_path_query_and_odd_ports() -> None:
    app = make_app((HTTPSRedirectMiddleware, {}))
    response = TestClient(app, base_url="http://shop.example:8080").get(
        "/small?q=a%20b", follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == "https://shop.example:8080/small?q=a%20b"
    plain_port = TestClient(app, base_url="http://shop.example").get(
        "/small", follow_redirects=False
    )
    assert plain_port.headers["location"] == "https://shop.example/small"
    secure = TestClient(app, base_url="https://shop.example").get("/small")
    assert secure.status_code == 200


# -- user middleware -------------------------------------------------------------------------


def test_the_last_added_middleware_is_the_outermost() -> None:
    app = make_app()
    seen: list[str] = []

    def tagger(name: str) -> Callable[..., Any]:
        async def tag(request: Request, call_next: Any) -> Response:
            seen.append(f"{name} in")
            response: Response = await call_next(request)
            seen.append(f"{name} out")
            return response

        return tag

    app.middleware("http")(tagger("first"))

    class Second(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            seen.append("second in")
            response: Response = await call_next(request)
            seen.append("second out")
            return response

    app.add_middleware(Second)
    app.add_middleware(BaseHTTPMiddleware, dispatch=tagger("third"))
    assert TestClient(app).get("/small").status_code == 200
    assert seen == ["third in", "second in", "first in", "first out", "second out", "third out"]


def test_a_middleware_may_read_what_the_app_answered_and_replace_the_body() -> None:
    app = make_app()

    @app.middleware("http")
    async def wrap(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])
        return Response(body.upper(), response.status_code, media_type="text/plain")

    response = TestClient(app).get("/text")
    assert response.text == TEXT.upper()
    assert response.headers["content-length"] == str(len(TEXT))


def test_an_http_exception_in_a_middleware_keeps_its_status() -> None:
    app = make_app()

    @app.middleware("http")
    def guard(request: Request, call_next: Any) -> Response:
        if "x-key" not in request.headers:
            raise HTTPException(401, "No key", headers={"WWW-Authenticate": "Key"})
        return call_next(request)  # type: ignore[no-any-return]

    client = TestClient(app)
    refused = client.get("/small")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "No key"}
    assert refused.headers["www-authenticate"] == "Key"
    assert client.get("/small", headers={"x-key": "1"}).status_code == 200


def test_a_middleware_must_return_a_response(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    @app.middleware("http")
    async def broken(request: Request, call_next: Any) -> Any:
        await call_next(request)
        return {"not": "a response"}

    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app, raise_server_exceptions=False).get("/small")
    assert response.status_code == 500
    assert "returned dict, not a Response" in caplog.text


def test_the_request_body_reaches_the_handler_through_middleware() -> None:
    app = make_app()

    @app.middleware("http")
    async def passthrough(request: Request, call_next: Any) -> Response:
        return await call_next(request)  # type: ignore[no-any-return]

    response = TestClient(app).post("/echo", json={"a": [1, 2]})
    assert response.json() == {"a": [1, 2]}
    head = TestClient(app).head("/small")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(b'{"ok":"yes"}'))


def test_a_failed_middleware_sends_the_request_down_the_error_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VelociPy()
    ran: list[str] = []

    @app.get("/work")
    def work(background_tasks: BackgroundTasks) -> str:
        background_tasks.add_task(ran.append, "success")
        background_tasks.add_task(ran.append, "error").with_options(run_on="error")
        background_tasks.add_task(ran.append, "always").with_options(run_on="always")
        return "done"

    @app.middleware("http")
    async def fails(request: Request, call_next: Any) -> Response:
        await call_next(request)
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger="velocipy"):
        response = TestClient(app, raise_server_exceptions=False).get("/work", run_tasks=False)
    assert response.status_code == 500
    assert ran == []  # not yet: tasks come after the response
    response.run_tasks()
    assert ran == ["error", "always"]
    # The success task was released with the handler's answer, then skipped.
    assert response.tasks[0].state.value == "skipped"
    assert "Exception in middleware" in caplog.text and "abandoned" not in caplog.text


def test_middleware_cannot_be_added_once_serving() -> None:
    app = make_app((GZipMiddleware, {}))
    TestClient(app).get("/small")
    with pytest.raises(RuntimeError, match="after the application has started"):
        app.add_middleware(CORSMiddleware)


def test_only_http_middleware_is_supported() -> None:
    with pytest.raises(DeclarationError, match="'websocket'"):
        VelociPy().middleware("websocket")


def test_an_app_without_middleware_keeps_the_plain_exchange() -> None:
    plain = VelociPy()
    assert "exchange" not in vars(plain)
    with_mw = make_app((GZipMiddleware, {}))
    assert "exchange" in vars(with_mw)


# -- ASGI middleware -------------------------------------------------------------------------


class ASGIHeader:
    """A pure ASGI middleware adding a response header."""

    def __init__(self, app: Any, value: str = "yes") -> None:
        self.app = app
        self.value = value.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-asgi", self.value)]
            await send(message)

        await self.app(scope, receive, tagged)


def test_asgi_middleware_must_be_outside_velocipy_middleware() -> None:
    app = make_app()
    app.add_middleware(ASGIHeader)
    app.add_middleware(GZipMiddleware)
    with pytest.raises(DeclarationError, match="ASGI middleware .*ASGIHeader.* add it after"):
        app.build_middleware_stack()


def test_asgi_middleware_is_refused_under_wsgi() -> None:
    app = make_app()
    app.add_middleware(ASGIHeader)
    with pytest.raises(DeclarationError, match=r"ASGI middleware \(.*ASGIHeader\).*WSGI"):
        app.wsgi  # noqa: B018


def test_asgi_middleware_runs_under_asgi_and_the_test_clients() -> None:
    app = make_app((GZipMiddleware, {"minimum_size": 100}))
    app.add_middleware(ASGIHeader, value="outer")
    response = TestClient(app).get("/text", headers={"accept-encoding": "gzip"})
    assert response.headers["x-asgi"] == "outer"
    assert response.headers["content-encoding"] == "gzip"  # the core's middleware ran too
    assert response.text == TEXT
    posted = TestClient(app).post("/echo", json={"a": 1})
    assert posted.json() == {"a": 1} and posted.headers["x-asgi"] == "outer"


def test_asgi_middleware_under_the_async_transport() -> None:
    app = make_app()
    app.add_middleware(ASGIHeader, value="async")

    async def main() -> httpx.Response:
        transport = AsyncCoreTransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get("/small")

    response = anyio.run(main)
    assert response.headers["x-asgi"] == "async"
    assert response.json() == {"ok": "yes"}
