"""TestClient: request building, responses, lifespan, server exceptions, task capture."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest

from velocipy import (
    BackgroundTasks,
    Cookie,
    Form,
    Header,
    Request,
    Response,
    StreamingResponse,
    VelociPy,
)
from velocipy.testing import TestClient


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
