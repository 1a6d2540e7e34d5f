"""The `Response` parameter, cookies, `status`, `jsonable_encoder`, `FileResponse`,
`ORJSONResponse` and `HTTPException`, through the TestClient."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import os
import uuid
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import pytest
from pydantic import BaseModel

from velocipy import (
    Depends,
    FileResponse,
    HTTPException,
    JSONResponse,
    ORJSONResponse,
    RequestValidationError,
    Response,
    VelociPy,
    status,
)
from velocipy.core import DeclarationError
from velocipy.encoders import jsonable_encoder
from velocipy.testing import TestClient


class Out(BaseModel):
    name: str


def test_the_response_parameter_sets_headers_cookies_and_status() -> None:
    app = VelociPy()

    def tracing(response: Response) -> str:
        response.headers["X-Trace"] = "t1"
        return "t1"

    @app.post("/login", response_model=Out)
    def login(response: Response, trace: Annotated[str, Depends(tracing)]) -> Any:
        response.set_cookie("session", "abc", httponly=True)
        response.headers["X-Extra"] = "1"
        response.status_code = status.HTTP_202_ACCEPTED
        return {"name": "ada", "secret": "x"}

    @app.post("/logout")
    def logout(response: Response) -> dict[str, bool]:
        response.delete_cookie("session")
        return {"ok": True}

    @app.get("/own")
    def own(response: Response) -> JSONResponse:
        response.headers["X-Lost"] = "1"  # a returned response is sent as it is
        return JSONResponse({"own": True})

    @app.get("/default")
    def default(response: Response) -> dict[str, Any]:
        return {"status": response.status_code}

    client = TestClient(app)
    out = client.post("/login")
    assert (out.status_code, out.json()) == (202, {"name": "ada"})
    assert out.headers["x-trace"] == "t1"
    assert out.headers["x-extra"] == "1"
    assert out.headers["set-cookie"] == "session=abc; HttpOnly; Path=/; SameSite=lax"
    gone = client.post("/logout").headers["set-cookie"]
    assert gone.startswith('session=""; expires=') and "Max-Age=0; Path=/" in gone
    own_out = client.get("/own")
    assert own_out.json() == {"own": True} and "x-lost" not in own_out.headers
    assert client.get("/default").json() == {"status": None}
    assert client.get("/default").status_code == 200


def test_status_constants() -> None:
    assert status.HTTP_200_OK == 200
    assert status.HTTP_404_NOT_FOUND == 404
    assert status.HTTP_422_UNPROCESSABLE_ENTITY == status.HTTP_422_UNPROCESSABLE_CONTENT == 422
    assert status.HTTP_418_IM_A_TEAPOT == 418
    assert status.WS_1008_POLICY_VIOLATION == 1008
    names = [name for name in dir(status) if name.startswith("HTTP_")]
    assert len(names) > 60
    assert all(int(name.split("_")[1]) == getattr(status, name) for name in names)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model(BaseModel):
    name: str
    note: str | None = None


def test_jsonable_encoder() -> None:
    value = {
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "day": datetime.date(2024, 1, 2),
        "span": datetime.timedelta(minutes=1),
        "id": uuid.UUID(int=1),
        "whole": decimal.Decimal("3"),
        "part": decimal.Decimal("1.5"),
        "color": Color.RED,
        "path": PurePosixPath("/tmp/x"),
        "tags": {"a"},
        "pair": (1, 2),
        "point": Point(1, 2),
        "model": Model(name="m"),
        "raw": b"bytes",
        "none": None,
    }
    assert jsonable_encoder(value) == {
        "when": "2024-01-02T03:04:05",
        "day": "2024-01-02",
        "span": 60.0,
        "id": "00000000-0000-0000-0000-000000000001",
        "whole": 3,
        "part": 1.5,
        "color": "red",
        "path": "/tmp/x",
        "tags": ["a"],
        "pair": [1, 2],
        "point": {"x": 1, "y": 2},
        "model": {"name": "m", "note": None},
        "raw": "bytes",
        "none": None,
    }
    assert jsonable_encoder(Model(name="m"), exclude_unset=True) == {"name": "m"}
    assert jsonable_encoder({"a": 1, "b": None}, exclude_none=True) == {"a": 1}
    assert jsonable_encoder({"a": 1, "b": 2}, include={"a"}) == {"a": 1}
    assert jsonable_encoder(Point(1, 2), exclude={"y"}) == {"x": 1}
    assert jsonable_encoder(3, custom_encoder={int: str}) == "3"
    with pytest.raises(ValueError):
        jsonable_encoder(object())


@pytest.fixture
def file_app(tmp_path: Path) -> tuple[TestClient, bytes, Path]:
    data = bytes(range(256)) * 1000  # 256,000 bytes: several chunks
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    app = VelociPy()

    @app.get("/file")
    def file() -> FileResponse:
        return FileResponse(path)

    @app.get("/download")
    def download() -> FileResponse:
        return FileResponse(path, filename="résumé.bin")

    @app.get("/text")
    def text() -> FileResponse:
        return FileResponse(tmp_path / "note.txt", filename="note.txt")

    (tmp_path / "note.txt").write_text("hello")
    return TestClient(app), data, path


def test_file_response_whole_file(file_app: tuple[TestClient, bytes, Path]) -> None:
    client, data, path = file_app
    out = client.get("/file")
    assert out.status_code == 200
    assert out.content == data
    assert out.headers["content-length"] == str(len(data))
    assert out.headers["accept-ranges"] == "bytes"
    assert out.headers["content-type"] == "application/octet-stream"
    assert out.headers["etag"].startswith('"')
    modified = datetime.datetime.strptime(out.headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert abs(modified.timestamp() - (os.stat(path).st_mtime - _utc_offset())) < 2
    head = client.head("/file")
    assert (head.content, head.headers["content-length"]) == (b"", str(len(data)))
    assert (
        client.get("/download").headers["content-disposition"]
        == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.bin"
    )
    note = client.get("/text")
    assert note.headers["content-disposition"] == 'attachment; filename="note.txt"'
    assert note.headers["content-type"] == "text/plain; charset=utf-8"
    assert note.text == "hello"


def _utc_offset() -> float:
    offset = datetime.datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset else 0.0


def test_file_response_ranges(file_app: tuple[TestClient, bytes, Path]) -> None:
    client, data, _ = file_app
    size = len(data)
    part = client.get("/file", headers={"range": "bytes=100-65635"})
    assert part.status_code == 206
    assert part.content == data[100:65636]
    assert part.headers["content-range"] == f"bytes 100-65635/{size}"
    assert part.headers["content-length"] == str(65536)
    tail = client.get("/file", headers={"range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, data[-10:])
    open_end = client.get("/file", headers={"range": f"bytes={size - 5}-"})
    assert open_end.content == data[-5:]
    past = client.get("/file", headers={"range": "bytes=999999-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    assert past.content == b""
    many = client.get("/file", headers={"range": "bytes=0-1,5-6"})
    assert (many.status_code, len(many.content)) == (200, size)  # several ranges: the whole file
    etag = client.get("/file").headers["etag"]
    same = client.get("/file", headers={"range": "bytes=0-9", "if-range": etag})
    assert (same.status_code, same.content) == (206, data[:10])
    stale = client.get("/file", headers={"range": "bytes=0-9", "if-range": '"old"'})
    assert (stale.status_code, len(stale.content)) == (200, size)


def test_a_missing_file_is_a_500(tmp_path: Path) -> None:
    app = VelociPy()

    @app.get("/gone")
    def gone() -> FileResponse:
        return FileResponse(tmp_path / "missing")

    assert TestClient(app, raise_server_exceptions=False).get("/gone").status_code == 500


def test_orjson_response() -> None:
    app = VelociPy()

    @app.get("/fast", response_class=ORJSONResponse)
    def fast() -> dict[str, Any]:
        return {"ok": True, 1: "non-str key", "when": datetime.date(2024, 1, 2)}

    out = TestClient(app).get("/fast")
    assert out.headers["content-type"] == "application/json"
    assert out.json() == {"ok": True, "1": "non-str key", "when": "2024-01-02"}


def test_orjson_missing_is_a_declaration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ORJSONResponse, "requires", "no_such_module_for_velocipy")
    with pytest.raises(DeclarationError, match="pip install no_such_module_for_velocipy"):

        @VelociPy().get("/fast", response_class=ORJSONResponse)
        def fast() -> dict[str, Any]:
            return {}


def test_http_exception_with_any_detail_and_headers() -> None:
    app = VelociPy()

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(
            status.HTTP_418_IM_A_TEAPOT,
            detail={"reason": "short", "codes": [1, 2]},
            headers={"X-Error": "tea"},
        )

    @app.get("/plain")
    def plain() -> None:
        raise HTTPException(status.HTTP_403_FORBIDDEN)

    @app.get("/needs/{n}")
    def needs(n: int) -> int:
        return n

    client = TestClient(app)
    out = client.get("/teapot")
    assert out.status_code == 418
    assert out.json() == {"detail": {"reason": "short", "codes": [1, 2]}}
    assert out.headers["x-error"] == "tea"
    assert client.get("/plain").json() == {"detail": "Forbidden"}

    @app.exception_handler(RequestValidationError)
    def validation(request: Any, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"errors": len(error.errors())}, status_code=400)

    assert (client.get("/needs/x").status_code, client.get("/needs/x").json()) == (
        400,
        {"errors": 1},
    )
