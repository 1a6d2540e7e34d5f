"""Forms and file uploads through the TestClient: File(), UploadFile, Form(), limits, cleanup."""

from __future__ import annotations

import dataclasses
import io
import logging
from typing import Annotated, Any

import pytest

from velocipy import (
    BackgroundTasks,
    Depends,
    File,
    Form,
    FormLimits,
    HTTPException,
    Request,
    UploadFile,
    VelociPy,
)
from velocipy.core import DeclarationError
from velocipy.testing import TestClient


@dataclasses.dataclass
class Signup:
    name: str
    age: int


def make_app(limits: FormLimits | None = None) -> VelociPy:
    app = VelociPy(form_limits=limits)
    app.state["seen"] = []

    @app.post("/one")
    async def one(file: UploadFile) -> dict[str, Any]:
        content = await file.read()
        return {
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "content": content.decode(),
            "in_memory": file.in_memory,
        }

    @app.post("/sync")
    def sync(upload: Annotated[UploadFile, File()]) -> dict[str, Any]:
        upload.file.seek(0, io.SEEK_END)
        return {"length": upload.file.tell(), "in_memory": upload.in_memory}

    @app.post("/bytes")
    def as_bytes(data: Annotated[bytes, File()]) -> int:
        return len(data)

    @app.post("/many")
    async def many(files: list[UploadFile]) -> list[str]:
        return [f"{f.filename}:{(await f.read()).decode()}" for f in files]

    @app.post("/optional")
    def optional(file: UploadFile | None = None) -> str | None:
        return None if file is None else file.filename

    @app.post("/mixed")
    async def mixed(
        title: Annotated[str, Form()],
        tags: Annotated[list[str], Form()],
        file: Annotated[UploadFile, File()],
    ) -> dict[str, Any]:
        return {"title": title, "tags": tags, "content": (await file.read()).decode()}

    @app.post("/form")
    def form(name: Annotated[str, Form()], age: Annotated[int, Form()] = 0) -> dict[str, Any]:
        return {"name": name, "age": age}

    @app.post("/model")
    def model(signup: Annotated[Signup, Form()]) -> dict[str, Any]:
        return dataclasses.asdict(signup)

    @app.post("/request-form")
    async def request_form(request: Request) -> dict[str, Any]:
        form = await request.form()
        return {key: str(value) for key, value in form.items()}

    @app.post("/task-reads")
    async def task_reads(file: UploadFile, tasks: BackgroundTasks) -> str:
        def later(upload: UploadFile) -> None:
            upload.file.seek(0)
            app.state["seen"].append((upload.file.read(), upload.file.closed))
            app.state["upload"] = upload

        tasks.add_task(later, file)
        return "ok"

    @app.post("/fails")
    async def fails(file: UploadFile) -> None:
        app.state["upload"] = file
        raise RuntimeError("handler failed")

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app())


def test_an_upload_file_has_its_name_type_size_and_content(client: TestClient) -> None:
    response = client.post("/one", files={"file": ("a.txt", b"hello", "text/plain")})
    assert response.json() == {
        "filename": "a.txt",
        "content_type": "text/plain",
        "size": 5,
        "content": "hello",
        "in_memory": True,
    }


def test_large_files_are_spooled_to_disk_and_read_back_whole() -> None:
    client = TestClient(make_app(FormLimits(spool_size=1000)))
    payload = bytes(range(256)) * 40  # 10,240 bytes: past the spool size
    out = client.post("/sync", files={"upload": ("big.bin", payload)}).json()
    assert out == {"length": len(payload), "in_memory": False}
    response = client.post("/one", files={"file": ("big.txt", b"x" * 5000)})
    assert response.json()["content"] == "x" * 5000 and response.json()["in_memory"] is False


def test_bytes_lists_optional_and_mixed(client: TestClient) -> None:
    assert client.post("/bytes", files={"data": ("d", b"12345")}).json() == 5
    files = [("files", ("a.txt", b"A")), ("files", ("b.txt", b"B"))]
    assert client.post("/many", files=files).json() == ["a.txt:A", "b.txt:B"]
    assert client.post("/optional", files={"other": ("x", b"")}).json() is None
    assert client.post("/optional", files={"file": ("x.txt", b"1")}).json() == "x.txt"
    out = client.post(
        "/mixed",
        data={"title": "report", "tags": ["a", "b"]},
        files={"file": ("r.txt", b"body")},
    ).json()
    assert out == {"title": "report", "tags": ["a", "b"], "content": "body"}


def test_form_fields_come_from_urlencoded_and_multipart_bodies(client: TestClient) -> None:
    assert client.post("/form", data={"name": "ada", "age": "36"}).json() == {
        "name": "ada",
        "age": 36,
    }
    multipart = client.post(
        "/form", data={"name": "ada", "age": "36"}, files={"ignored": ("f", b"")}
    )
    assert multipart.json() == {"name": "ada", "age": 36}


def test_a_model_as_a_set_of_form_fields(client: TestClient) -> None:
    assert client.post("/model", data={"name": "ada", "age": "36"}).json() == {
        "name": "ada",
        "age": 36,
    }
    invalid = client.post("/model", data={"name": "ada", "age": "old"})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "age"]


def test_request_form_gives_fields_and_files(client: TestClient) -> None:
    out = client.post(
        "/request-form", data={"a": "1"}, files={"f": ("f.txt", b"x", "text/plain")}
    ).json()
    assert out["a"] == "1" and out["f"].startswith("UploadFile(filename='f.txt'")


def test_missing_and_wrong_kind_of_file_are_422_as_in_fastapi(client: TestClient) -> None:
    missing = client.post("/one", files={"other": ("x", b"")})
    assert missing.status_code == 422
    assert missing.json() == {
        "detail": [
            {"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}
        ]
    }
    text = client.post("/one", data={"file": "not a file"}, files={"x": ("x", b"")})
    assert text.status_code == 422
    problem = text.json()["detail"][0]
    assert problem["type"] == "value_error" and problem["loc"] == ["body", "file"]
    assert problem["msg"] == "Value error, Expected UploadFile, received: <class 'str'>"


def test_a_task_handed_an_upload_can_still_read_it_then_it_is_closed() -> None:
    app = make_app(FormLimits(spool_size=10))
    client = TestClient(app)
    response = client.post("/task-reads", files={"file": ("t.txt", b"read me later, please")})
    assert response.json() == "ok"
    assert app.state["seen"] == [(b"read me later, please", False)]
    assert app.state["upload"].file.closed  # closed after the task ran


def test_uploads_are_closed_when_the_handler_fails() -> None:
    app = make_app(FormLimits(spool_size=10))
    client = TestClient(app, raise_server_exceptions=False)
    response = client.post("/fails", files={"file": ("t.txt", b"spooled to disk by now")})
    assert response.status_code == 500
    assert app.state["upload"].file.closed


@pytest.mark.parametrize(
    ("limits", "kwargs", "status", "detail"),
    [
        (
            FormLimits(max_files=1),
            {"files": [("files", ("a", b"1")), ("files", ("b", b"2"))]},
            400,
            "Too many files. Maximum number of files is 1.",
        ),
        (
            FormLimits(max_fields=1),
            {"data": {"a": "1", "b": "2"}, "files": {"files": ("a", b"1")}},
            400,
            "Too many fields. Maximum number of fields is 1.",
        ),
        (
            FormLimits(max_fields=1),
            {"data": {"a": "1", "b": "2"}},
            400,
            "Too many fields. Maximum number of fields is 1.",
        ),
        (
            FormLimits(max_field_size=1024),
            {"data": {"a": "x" * 2000}, "files": {"files": ("a", b"1")}},
            400,
            "Part exceeded maximum size of 1KB.",
        ),
        (
            FormLimits(max_size=10_000),
            {"files": {"files": ("a", b"x" * 20_000)}},
            413,
            None,
        ),
    ],
)
def test_limits_answer_a_clear_4xx(
    limits: FormLimits, kwargs: dict[str, Any], status: int, detail: str | None
) -> None:
    response = TestClient(make_app(limits)).post("/many", **kwargs)
    assert response.status_code == status
    if detail is not None:
        assert response.json() == {"detail": detail}


def test_part_headers_have_a_size_limit() -> None:
    client = TestClient(make_app(FormLimits(max_part_header_size=1024)))
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
        + b"X-Long: "
        + b"y" * 2000
        + b"\r\n\r\ndata\r\n--B--\r\n"
    )
    response = client.post(
        "/one", content=body, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Part headers exceeded maximum size of 1KB."}


@pytest.mark.parametrize(
    ("content_type", "body", "detail"),
    [
        ("multipart/form-data", b"--B\r\n", "Missing boundary in multipart."),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nda',
            "Malformed multipart body: it ends before its closing boundary",
        ),
        (
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Type: text/plain\r\n\r\ndata\r\n--B--\r\n",
            "Malformed multipart body: a part has no Content-Disposition header",
        ),
    ],
)
def test_malformed_multipart_is_a_400_with_a_short_message(
    client: TestClient, content_type: str, body: bytes, detail: str
) -> None:
    response = client.post("/one", content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.json() == {"detail": detail}


def test_a_truncated_upload_closes_its_spooled_file(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(FormLimits(spool_size=10))
    seen: list[UploadFile] = []

    @app.post("/never")
    def never(file: UploadFile) -> None:  # pragma: no cover - the body never completes
        seen.append(file)

    body = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n' + b"x" * 100
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = TestClient(app).post(
            "/never", content=body, headers={"content-type": "multipart/form-data; boundary=B"}
        )
    assert response.status_code == 400 and seen == []


def test_declaration_errors() -> None:
    app = VelociPy()
    with pytest.raises(DeclarationError, match="File\\(\\) takes UploadFile, bytes"):

        @app.post("/bad")
        def bad(count: Annotated[int, File()]) -> None: ...

    with pytest.raises(DeclarationError, match="both a JSON body and form fields"):

        @app.post("/both")
        def both(item: dict[str, int], name: Annotated[str, Form()]) -> None: ...


def test_routes_with_files_need_python_multipart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("velocipy.core._plans.multipart_available", lambda: False)
    app = VelociPy()
    with pytest.raises(DeclarationError, match=r"pip install 'velocipy\[multipart\]'") as raised:

        @app.post("/upload")
        def upload(file: UploadFile) -> None: ...

    assert "POST /upload" in str(raised.value) and "'file'" in str(raised.value)


@pytest.mark.slow
def test_a_100_mb_upload_through_the_testclient_holds_little_memory(tmp_path: Any) -> None:
    import hashlib
    import tracemalloc

    app = VelociPy(form_limits=FormLimits(max_size=256 * 1024 * 1024))

    @app.post("/digest")
    async def digest(file: UploadFile) -> dict[str, Any]:
        hasher = hashlib.sha256()
        while chunk := await file.read(256 * 1024):
            hasher.update(chunk)
        return {"size": file.size, "sha256": hasher.hexdigest()}

    block = bytes(range(256)) * 4096  # 1 MiB
    size = 100 * len(block)
    path = tmp_path / "big.bin"
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
            hasher.update(block)
    client = TestClient(app)
    tracemalloc.start()
    try:
        with path.open("rb") as upload:
            out = client.post("/digest", files={"file": ("big.bin", upload)}).json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == {"size": size, "sha256": hasher.hexdigest()}
    assert peak < 5 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_constraints_and_doc_keywords_on_form_and_file() -> None:
    app = VelociPy()

    @app.post("/checked")
    def checked(
        name: Annotated[str, Form(min_length=3, description="who")],
        data: Annotated[bytes, File(max_length=4, description="at most 4 bytes")],
    ) -> str:
        return name

    client = TestClient(app)
    ok = client.post("/checked", data={"name": "ada"}, files={"data": ("d", b"1234")})
    assert ok.json() == "ada"
    bad = client.post("/checked", data={"name": "al"}, files={"data": ("d", b"12345")})
    assert bad.status_code == 422
    assert [(p["type"], p["loc"]) for p in bad.json()["detail"]] == [
        ("string_too_short", ["body", "name"]),
        ("bytes_too_long", ["body", "data"]),
    ]
    # An uploaded file in an error is described, never echoed back.
    assert bad.json()["detail"][1]["input"] == {
        "filename": "d",
        "content_type": "application/octet-stream",
        "size": 5,
    }


def test_a_file_sent_for_a_text_field_is_a_422_not_a_crash(client: TestClient) -> None:
    response = client.post("/form", files={"name": ("n.txt", b"x", "text/plain")})
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert (problem["type"], problem["loc"]) == ("string_type", ["body", "name"])
    assert problem["input"]["filename"] == "n.txt"


# -- Request.stream(), body(), form() read by the handler itself ---------------------------------


def stream_app() -> VelociPy:
    app = VelociPy(max_body_size=1000)
    app.state["chunks"] = []

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, Any]:
        chunks = [chunk async for chunk in request.stream()]
        app.state["chunks"] = chunks
        return {"size": sum(map(len, chunks)), "last": chunks[-1].decode()}

    @app.post("/body-then-stream")
    async def body_then_stream(request: Request) -> dict[str, Any]:
        body = await request.body()
        again = b"".join([chunk async for chunk in request.stream()])
        return {"body": body.decode(), "again": again.decode(), "json": await request.json()}

    @app.post("/stream-then-body")
    async def stream_then_body(request: Request) -> str:
        async for _ in request.stream():
            pass
        try:
            await request.body()
        except RuntimeError as error:
            return str(error)
        return "read twice"

    @app.post("/body")
    async def body(request: Request) -> int:
        return len(await request.body())

    @app.post("/form-limits")
    async def form_limits(request: Request) -> list[str]:
        form = await request.form(max_files=1, max_fields=2, max_part_size=10)
        return sorted(form)

    @app.post("/form-with")
    async def form_with(request: Request) -> bool:
        async with request.form() as form:
            upload = form["f"]
            app.state["upload"] = upload
            assert not upload.file.closed
        return bool(upload.file.closed)

    @app.post("/late-read")
    async def late_read(request: Request, tasks: BackgroundTasks) -> str:
        async def later() -> None:
            try:
                await request.body()
            except RuntimeError as error:
                app.state["late"] = str(error)

        tasks.add_task(later)
        return "ok"

    return app


def test_request_stream_reads_the_body_in_pieces_as_it_is_iterated() -> None:
    app = stream_app()
    client = TestClient(app)

    def pieces() -> Any:  # sent chunked, in pieces, as a client streaming an upload would
        for _ in range(40):
            yield b"x" * 100

    # 4,000 bytes: past max_body_size, which holds for a body read whole, not for a stream.
    out = client.post("/stream", content=pieces()).json()
    assert out == {"size": 4000, "last": ""}
    assert len(app.state["chunks"]) > 2  # pieces, then Starlette's final b""
    assert client.post("/stream").json() == {"size": 0, "last": ""}


def test_body_is_kept_for_stream_and_json_and_stream_consumed_is_an_error() -> None:
    client = TestClient(stream_app())
    out = client.post("/body-then-stream", json={"a": 1}).json()
    assert out == {"body": '{"a":1}', "again": '{"a":1}', "json": {"a": 1}}
    assert client.post("/stream-then-body", content=b"abc").json() == "Stream consumed"


def test_a_body_read_whole_by_the_request_keeps_the_apps_limit() -> None:
    client = TestClient(stream_app())
    assert client.post("/body", content=b"x" * 1000).json() == 1000
    too_large = client.post("/body", content=b"x" * 1001)
    assert too_large.status_code == 413


def test_request_form_takes_per_call_limits_as_starlette() -> None:
    client = TestClient(stream_app())
    ok = client.post("/form-limits", data={"a": "1"}, files={"f": ("f", b"x")})
    assert ok.json() == ["a", "f"]
    files = client.post("/form-limits", files=[("f", ("f", b"x")), ("g", ("g", b"y"))])
    assert files.status_code == 400
    assert files.json() == {"detail": "Too many files. Maximum number of files is 1."}
    fields = client.post("/form-limits", data={"a": "1", "b": "2", "c": "3"})
    assert fields.json() == {"detail": "Too many fields. Maximum number of fields is 2."}
    part = client.post("/form-limits", data={"a": "x" * 11}, files={"f": ("f", b"x")})
    assert part.status_code == 400 and "Part exceeded maximum size" in part.json()["detail"]


def test_request_form_as_a_context_manager_closes_its_files() -> None:
    app = stream_app()
    client = TestClient(app)
    assert client.post("/form-with", files={"f": ("f", b"x")}).json() is True


def test_a_task_cannot_read_a_body_left_unread_once_the_response_is_out() -> None:
    app = stream_app()
    assert TestClient(app).post("/late-read", content=b"abc").json() == "ok"
    assert "can no longer be read" in app.state["late"]


def test_files_of_request_form_are_closed_after_the_tasks() -> None:
    app = VelociPy(form_limits=FormLimits(spool_size=10))

    @app.post("/keep")
    async def keep(request: Request, tasks: BackgroundTasks) -> str:
        upload = (await request.form())["f"]
        app.state["upload"] = upload

        def later() -> None:
            upload.file.seek(0)
            app.state["read"] = (upload.file.read(), upload.in_memory)

        tasks.add_task(later)
        return "ok"

    TestClient(app).post("/keep", files={"f": ("f", b"spooled to disk, read by a task")})
    assert app.state["read"] == (b"spooled to disk, read by a task", False)
    assert app.state["upload"].file.closed


# -- forms read by dependencies: overrides and route-wide dependencies ----------------------------


def test_an_override_that_reads_a_form_gets_the_parsed_multipart_form() -> None:
    app = VelociPy()

    def who() -> str:
        return "nobody"

    @app.post("/who")
    def route(name: Annotated[str, Depends(who)]) -> str:
        return name

    def from_form(name: Annotated[str, Form()], photo: UploadFile) -> str:
        return f"{name}:{photo.filename}:{photo.file.read().decode()}"

    app.dependency_overrides[who] = from_form
    client = TestClient(app)
    out = client.post("/who", data={"name": "ada"}, files={"photo": ("p.png", b"png")})
    assert out.status_code == 200, out.text
    assert out.json() == "ada:p.png:png"
    assert client.post("/who", data={"name": "bob"}, files={"x": ("x", b"")}).status_code == 422


def test_a_route_wide_dependency_reading_a_form_gets_it() -> None:
    def checked(token: Annotated[str, Form()]) -> None:
        if token != "secret":
            raise HTTPException(403, "bad token")

    app = VelociPy()

    @app.post("/guarded", dependencies=[Depends(checked)])
    def guarded() -> str:
        return "in"

    client = TestClient(app)
    files = {"f": ("f", b"")}  # multipart: parsed only when the form is known to be needed
    assert client.post("/guarded", data={"token": "secret"}, files=files).json() == "in"
    assert client.post("/guarded", data={"token": "nope"}, files=files).status_code == 403


@pytest.mark.slow
def test_a_50_mb_body_streamed_through_the_testclient_holds_little_memory() -> None:
    import hashlib
    import tracemalloc

    from tests.adapters.upload_app import app  # the app the servers' memory tests serve

    block = bytes(range(256)) * 1024  # 256 KiB, sent again and again: never 50 MB at once
    count = 200
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(block)

    def body() -> Any:
        for _ in range(count):
            yield block

    client = TestClient(app)
    tracemalloc.start()
    try:
        out = client.post("/stream-digest", content=body()).json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == {"size": count * len(block), "sha256": expected.hexdigest()}
    assert peak < 5 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_http_middleware_reads_the_body_as_starlette_and_the_handler_gets_it_too() -> None:
    app = VelociPy(form_limits=FormLimits(spool_size=10))

    @app.middleware("http")
    async def peek(request: Request, call_next: Any) -> Any:
        if request.path == "/streamed-away":
            async for _ in request.stream():
                pass
        elif request.path == "/form":
            async with request.form() as form:
                request.state.names = sorted(form)
        elif request.path != "/untouched":
            request.state.size = len(await request.body())
        return await call_next(request)

    @app.post("/json")
    def json_body(item: dict[str, int], request: Request) -> list[int]:
        return [request.state.size, item["a"]]

    @app.post("/stream")
    async def stream(request: Request) -> list[int]:
        chunks = [chunk async for chunk in request.stream()]
        return [request.state.size, sum(map(len, chunks))]

    @app.post("/untouched")
    async def untouched(request: Request) -> int:
        return len(await request.body())

    @app.post("/streamed-away")
    async def streamed_away(request: Request) -> int:
        return len(await request.body())

    @app.post("/form")
    def form(request: Request) -> list[str]:
        return request.state.names  # type: ignore[no-any-return]

    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/json", json={"a": 7}).json() == [len(b'{"a":7}'), 7]
    assert client.post("/stream", content=b"x" * 200_000).json() == [200_000, 200_000]
    assert client.post("/untouched", content=b"abc").json() == 3
    failed = client.post("/streamed-away", content=b"abc")
    assert failed.status_code == 500  # nobody kept it: "Stream consumed"
    named = client.post("/form", data={"a": "1"}, files={"f": ("f", b"spooled to disk")})
    assert named.json() == ["a", "f"]
