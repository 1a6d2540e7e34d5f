"""Depends: sync/async, nested, cached, generators with cleanup, overrides, declaration checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest

from tests.core.handdrive import serve
from velocipy.core import (
    Application,
    BackgroundTasks,
    DeclarationError,
    Depends,
    HTTPException,
    Request,
)


def build(log: list[str]) -> Application:
    app = Application()

    def settings() -> dict[str, int]:
        log.append("settings")
        return {"limit": 5}

    async def db(cfg: Annotated[dict[str, int], Depends(settings)]) -> AsyncIterator[str]:
        log.append("db open")
        try:
            yield f"db(limit={cfg['limit']})"
        except HTTPException:
            log.append("db saw HTTPException")
            raise
        finally:
            log.append("db close")

    def user(token: str, cfg: Annotated[dict[str, int], Depends(settings)]) -> Iterator[str]:
        log.append("user open")
        yield f"user:{token}"
        log.append("user close")

    @app.get("/data")
    async def data(
        conn: Annotated[str, Depends(db)],
        who: str = Depends(user),
        fresh: dict[str, int] = Depends(settings, use_cache=False),
        tasks: BackgroundTasks = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        tasks.add_task(log.append, "task")
        return {"conn": conn, "who": who, "fresh": fresh}

    @app.get("/fails")
    def fails(conn: Annotated[str, Depends(db)]) -> None:
        raise HTTPException(418, "teapot")

    def translate() -> Iterator[None]:
        try:
            yield
        except KeyError as error:
            raise HTTPException(404, f"no such key {error}") from None

    @app.get("/translated")
    def translated(_: Annotated[None, Depends(translate)]) -> None:
        raise KeyError("k")

    def reads_request(request: Request) -> str:
        return request.method

    @app.get("/req")
    def req(method: Annotated[str, Depends(reads_request)]) -> str:
        return method

    return app


def test_dependencies_resolve_depth_first_cached_and_clean_up_after_tasks() -> None:
    log: list[str] = []
    out = serve(build(log), "GET", "/data", query=b"token=t1")
    assert out.json() == {"conn": "db(limit=5)", "who": "user:t1", "fresh": {"limit": 5}}
    # settings cached once for db and user, then called again for use_cache=False.
    assert log == [
        "settings",
        "db open",
        "user open",
        "settings",
        "task",
        "user close",
        "db close",
    ]


def test_generator_dependencies_see_the_handler_exception_before_the_error_response() -> None:
    log: list[str] = []
    out = serve(build(log), "GET", "/fails")
    assert out.status == 418
    assert log == ["settings", "db open", "db saw HTTPException", "db close"]


def test_a_generator_dependency_may_translate_an_exception() -> None:
    out = serve(build([]), "GET", "/translated")
    assert out.status == 404
    assert out.json() == {"detail": "no such key 'k'"}


def test_dependency_validation_errors_stop_everything_before_user_code() -> None:
    log: list[str] = []
    out = serve(build(log), "GET", "/data")  # token missing
    assert out.status == 422
    assert out.json()["detail"][0]["loc"] == ["query", "token"]
    assert log == []


def test_request_in_a_dependency() -> None:
    assert serve(build([]), "GET", "/req").json() == "GET"


def test_overrides_are_consulted_per_request_and_may_need_new_parameters() -> None:
    log: list[str] = []
    app = build(log)
    original_user = next(p.dependency.call for p in app.routes[0].plan.depends if p.name == "who")

    def fake_user(name: str = "anon") -> str:
        return f"fake:{name}"

    app.dependency_overrides[original_user] = fake_user
    out = serve(app, "GET", "/data", query=b"name=zed")
    assert out.json()["who"] == "fake:zed"
    app.dependency_overrides = {}
    assert serve(app, "GET", "/data", query=b"token=t").json()["who"] == "user:t"


def test_override_that_reads_the_body() -> None:
    app = Application()

    def dep() -> int:
        return 1

    @app.post("/x")
    def handler(value: Annotated[Any, Depends(dep)]) -> Any:
        return value

    def from_body(payload: dict[str, int]) -> int:
        return payload["n"]

    app.dependency_overrides[dep] = from_body
    assert serve(app, "POST", "/x", body=b'{"n": 9}').json() == 9


def test_dependency_that_does_not_yield_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    app = Application()

    def broken() -> Iterator[int]:
        return
        yield 1

    @app.get("/x")
    def handler(v: Annotated[int, Depends(broken)]) -> int:
        return v

    out = serve(app, "GET", "/x")
    assert out.status == 500
    assert "did not yield" in caplog.text or "without yielding" in caplog.text


def test_dependency_that_yields_twice_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = Application()

    def twice() -> Iterator[int]:
        yield 1
        yield 2

    @app.get("/x")
    def handler(v: Annotated[int, Depends(twice)]) -> int:
        return v

    out = serve(app, "GET", "/x")
    assert out.status == 200
    assert "Cleanup of a dependency for GET /x failed" in caplog.text


def test_background_tasks_in_a_dependency_is_refused_at_declaration() -> None:
    app = Application()

    def inner(tasks: BackgroundTasks) -> None: ...

    def outer(x: Annotated[None, Depends(inner)]) -> None: ...

    with pytest.raises(DeclarationError) as raised:

        @app.post("/signup")
        def handler(x: Annotated[None, Depends(outer)]) -> None: ...

    message = str(raised.value)
    assert "POST /signup" in message
    assert "parameter 'tasks'" in message
    assert "inner" in message and "outer" in message


def test_depends_without_callable_uses_the_annotation() -> None:
    app = Application()

    class Service:
        def __init__(self) -> None:
            self.name = "svc"

    @app.get("/x")
    def handler(svc: Service = Depends()) -> str:  # noqa: B008
        return svc.name

    assert serve(app, "GET", "/x").json() == "svc"


def test_depends_needs_a_callable() -> None:
    app = Application()
    with pytest.raises(DeclarationError, match="GET /x: parameter 'v'.*needs a callable"):

        @app.get("/x")
        def handler(v: int = Depends("settings")) -> None: ...  # type: ignore[arg-type]  # noqa: B008

    with pytest.raises(DeclarationError, match="GET /y: cannot read the signature of int"):

        @app.get("/y")
        def other(v: int = Depends()) -> None: ...  # noqa: B008
