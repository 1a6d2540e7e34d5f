"""TestClient: request building, responses, lifespan, server exceptions, task capture."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import anyio
import httpx
import pytest

from velocipy import (
    BackgroundTasks,
    Cookie,
    Form,
    Header,
    RedirectResponse,
    Request,
    Response,
    StreamingResponse,
    VelociPy,
)
from velocipy.testing import AsyncCoreTransport, TestClient


@pytest.fixture
def app() -> VelociPy:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: VelociPy) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = VelociPy(lifespan=lifespan, max_body_size=1024)
    app.state["events"] = events

    @app.api_route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "query": request.query_params.multi_items(),
            "body": (await request.body()).decode(),
            "content_type": request.headers.get("content-type"),
            "x": request.headers.get("x-custom"),
            "cookie": request.cookies,
            "url": request.url,
        }

    @app.post("/form")
    def form(name: Annotated[str, Form()]) -> str:
        return name

    @app.get("/thread")
    def thread() -> str:
        return threading.current_thread().name

    @app.get("/login")
    def login() -> Response:
        response = Response("in")
        response.set_cookie("sid", "abc")
        return response

    @app.get("/whoami")
    def whoami(sid: Annotated[str | None, Cookie()] = None) -> str | None:
        return sid

    @app.get("/agent")
    def agent(user_agent: Annotated[str, Header()]) -> str:
        return user_agent

    @app.get("/crash")
    def crash() -> None:
        raise KeyError("secret detail")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for i in range(3):
                yield str(i)

        return StreamingResponse(chunks())

    @app.post("/failing-task")
    def failing(tasks: BackgroundTasks) -> str:
        tasks.add_task(lambda: 1 / 0)
        return "still ok"

    return app


def test_request_building(app: VelociPy) -> None:
    client = TestClient(app)
    out = client.post(
        "/echo?a=1",
        params={"b": "2"},
        json={"k": "v"},
        headers={"X-Custom": "yes"},
        cookies={"c": "1"},
    ).json()
    assert out == {
        "method": "POST",
        "query": [["a", "1"], ["b", "2"]],
        "body": '{"k":"v"}',
        "content_type": "application/json",
        "x": "yes",
        "cookie": {"c": "1"},
        "url": "http://testserver/echo?a=1&b=2",
    }
    assert client.put("/echo", content="raw").json()["body"] == "raw"
    assert client.patch("/echo", content=b"bytes").json()["body"] == "bytes"
    assert client.delete("/echo").json()["method"] == "DELETE"
    assert client.options("/echo").json()["method"] == "OPTIONS"
    assert client.get("/echo", params=[("x", "1"), ("x", "2")]).json()["query"] == [
        ["x", "1"],
        ["x", "2"],
    ]
    assert client.post("/form", data={"name": "Zoë"}).json() == "Zoë"


def test_response_object(app: VelociPy) -> None:
    response = TestClient(app).get("/echo")
    assert response.status_code == 200 and response.is_success
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["CONTENT-LENGTH"] == str(len(response.content))
    assert response.text.startswith("{")
    assert repr(response) == "<TestResponse [200]>"


def test_sync_handlers_run_in_the_calling_thread(app: VelociPy) -> None:
    assert TestClient(app).get("/thread").json() == threading.current_thread().name


def test_cookies_persist_between_requests(app: VelociPy) -> None:
    client = TestClient(app)
    client.get("/login")
    assert client.get("/whoami").json() == "abc"


def test_default_headers_look_like_a_client(app: VelociPy) -> None:
    assert TestClient(app).get("/agent").json() == "velocipy-testclient"


def test_server_exceptions_are_raised_by_default(app: VelociPy) -> None:
    with pytest.raises(KeyError, match="secret detail"):
        TestClient(app).get("/crash")
    response = TestClient(app, raise_server_exceptions=False).get("/crash")
    assert response.status_code == 500
    assert "secret" not in response.text


def test_streaming_responses_are_collected(app: VelociPy) -> None:
    assert TestClient(app).get("/stream").content == b"012"


def test_failing_task_never_costs_the_response(
    app: VelociPy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app).post("/failing-task")
    assert response.json() == "still ok"
    assert "ZeroDivisionError" in caplog.text


def test_body_limit_applies(app: VelociPy) -> None:
    response = TestClient(app).post("/echo", content=b"x" * 2000)
    assert response.status_code == 413


def test_with_block_runs_the_lifespan(app: VelociPy) -> None:
    events = app.state["events"]
    with TestClient(app) as client:
        assert events == ["startup"]
        assert client.get("/echo").status_code == 200
    assert events == ["startup", "shutdown"]


# -- the client is httpx's: what comes with it ------------------------------------------


def test_it_is_an_httpx_client_and_answers_httpx_responses(app: VelociPy) -> None:
    client = TestClient(app)
    response = client.get("/echo")
    assert isinstance(client, httpx.Client)
    assert isinstance(response, httpx.Response)
    assert response.request.url == "http://testserver/echo"
    assert response.tasks == ()


def test_files_and_form_fields_go_out_as_multipart(app: VelociPy) -> None:
    out = (
        TestClient(app)
        .post("/echo", data={"kind": "doc"}, files={"upload": ("a.txt", b"hello", "text/plain")})
        .json()
    )
    assert out["content_type"].startswith("multipart/form-data; boundary=")
    assert 'name="kind"\r\n\r\ndoc\r\n' in out["body"]
    assert 'filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nhello\r\n' in out["body"]


def test_redirects_are_followed_by_default(app: VelociPy) -> None:
    @app.get("/old")
    def old() -> RedirectResponse:
        return RedirectResponse("/echo")

    client = TestClient(app)
    followed = client.get("/old")
    assert followed.status_code == 200 and followed.url == "http://testserver/echo"
    assert [r.status_code for r in followed.history] == [307]
    assert client.get("/old", follow_redirects=False).headers["location"] == "/echo"
    assert TestClient(app, follow_redirects=False).get("/old").status_code == 307


def test_base_url_auth_and_default_headers(app: VelociPy) -> None:
    @app.get("/who")
    def who(request: Request) -> dict[str, Any]:
        return {
            "url": request.url,
            "auth": request.headers.get("authorization"),
            "x": request.headers.getlist("x-many"),
        }

    client = TestClient(
        app,
        base_url="https://example.org:8443",
        headers=[("X-Many", "1"), ("X-Many", "2")],
        auth=("ada", "secret"),
    )
    out = client.get("/who").json()
    assert out["url"] == "https://example.org:8443/who"
    assert out["auth"] == "Basic YWRhOnNlY3JldA=="
    assert out["x"] == ["1", "2"]


def test_stream_reads_the_body_in_chunks(app: VelociPy) -> None:
    with TestClient(app).stream("GET", "/stream") as response:
        assert response.status_code == 200
        assert b"".join(response.iter_bytes()) == b"012"


def test_tasks_can_be_captured_and_run_later(app: VelociPy) -> None:
    ran: list[str] = []

    @app.post("/later")
    def later(tasks: BackgroundTasks) -> str:
        tasks.add_task(ran.append, "one")
        tasks.add_task(ran.append, "two")
        return "queued"

    client = TestClient(app)
    response = client.post("/later", run_tasks=False)
    assert response.json() == "queued" and ran == []
    assert [task.args for task in response.tasks] == [("one",), ("two",)]
    response.run_tasks()
    assert ran == ["one", "two"]
    with pytest.raises(RuntimeError, match="no captured tasks"):
        response.run_tasks()
    assert client.post("/later").json() == "queued" and ran == ["one", "two"] * 2


def test_a_server_exception_is_raised_after_the_tasks_ran(app: VelociPy) -> None:
    ran: list[str] = []

    @app.post("/fails-after-task")
    def fails(tasks: BackgroundTasks) -> None:
        tasks.add_task(ran.append, "always").with_options(run_on="always")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        TestClient(app).post("/fails-after-task")
    assert ran == ["always"]


def test_the_async_transport_drives_the_core_without_asgi(app: VelociPy) -> None:
    ran: list[str] = []

    @app.post("/async-task")
    def with_task(tasks: BackgroundTasks) -> str:
        tasks.add_task(ran.append, "done")
        return threading.current_thread().name

    async def main() -> None:
        transport = AsyncCoreTransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            echoed = await client.post("/echo?a=1", json={"k": 1})
            assert echoed.json()["body"] == '{"k":1}'
            assert echoed.json()["query"] == [["a", "1"]]
            threaded = await client.post("/async-task")
            assert threaded.json() != threading.current_thread().name  # a worker thread
            assert ran == ["done"]  # the tasks ran before the call returned
            assert (await client.get("/stream")).content == b"012"
            assert (await client.post("/echo", content=b"x" * 2000)).status_code == 413

    anyio.run(main)


def test_httpx_asgi_transport_works_too(app: VelociPy) -> None:
    async def main() -> None:
        transport = httpx.ASGITransport(app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.post("/form", data={"name": "ada"})).json() == "ada"

    anyio.run(main)


def lazy_app() -> tuple[VelociPy, list[str]]:
    app = VelociPy()
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        for index in range(3):
            seen.append(f"made {index}")
            yield f"{index}".encode()

    @app.get("/lazy")
    def lazy(tasks: BackgroundTasks) -> StreamingResponse:
        tasks.add_task(seen.append, "task")
        return StreamingResponse(chunks())

    return app, seen


def test_stream_pulls_the_apps_chunks_as_the_test_reads_them() -> None:
    app, seen = lazy_app()
    with TestClient(app).stream("GET", "/lazy") as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        assert next(chunks) == b"0"
        assert seen == ["made 0"]  # the app has not made the next chunk yet
        assert next(chunks) == b"1"
        assert seen == ["made 0", "made 1"]  # and no task: the response is not over
        assert b"".join(chunks) == b"2"  # read to its end: httpx closes the stream
    assert seen == ["made 0", "made 1", "made 2", "task"]


def test_a_stream_closed_early_is_a_client_gone_and_its_tasks_are_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = lazy_app()
    with TestClient(app).stream("GET", "/lazy") as response:
        assert next(response.iter_raw()) == b"0"
    assert seen == ["made 0"]
    assert "abandoned" in caplog.text


def test_a_streamed_response_read_whole_has_run_its_tasks_or_keeps_them() -> None:
    app, seen = lazy_app()
    client = TestClient(app)
    assert client.get("/lazy").content == b"012"
    assert seen[-1] == "task"
    seen.clear()
    kept = client.get("/lazy", run_tasks=False)
    assert kept.content == b"012" and "task" not in seen
    kept.run_tasks()
    assert seen[-1] == "task"


def test_the_async_transport_streams_lazily_too() -> None:
    app, seen = lazy_app()

    async def main() -> None:
        transport = AsyncCoreTransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            async with client.stream("GET", "/lazy") as response:
                chunks = response.aiter_raw()
                assert await chunks.__anext__() == b"0"
                assert seen == ["made 0"]
            assert seen == ["made 0"]  # closed early: the task was abandoned
            assert (await client.get("/lazy")).content == b"012"
            assert seen[-1] == "task"

    anyio.run(main)


def test_the_backend_option_runs_async_code_on_trio_as_starlettes() -> None:
    pytest.importorskip("trio")
    import sniffio

    app = VelociPy()

    @app.post("/library")
    async def library(request: Request) -> list[Any]:
        return [sniffio.current_async_library(), len(await request.body())]

    with TestClient(app, backend="trio") as client:
        assert client.post("/library", content=b"abc").json() == ["trio", 3]
    assert TestClient(app, backend="trio").post("/library").json() == ["trio", 0]
    assert TestClient(app).post("/library").json() == ["asyncio", 0]
