"""`StaticFiles` through the TestClient: traversal refused, caching headers, ranges, HTML mode.

Every driver serves it too: tests/conformance/test_mounts.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from velocipy import VelociPy
from velocipy.staticfiles import StaticFiles
from velocipy.testing import TestClient


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "css" / "app.css").write_text("body { color: red }\n")
    (root / "hello.txt").write_text("hello, static\n")
    (root / "data.json").write_text('{"a": 1}')
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "404.html").write_text("<h1>nothing here</h1>")
    (tmp_path / "secret.txt").write_text("top secret")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(root / "hello.txt", root / "alias.txt")
    return root


def client_for(directory: Path, **options: bool) -> TestClient:
    app = VelociPy()

    @app.get("/api")
    def api() -> str:
        return "api"

    app.mount("/static", StaticFiles(directory=directory, **options), name="static")
    return TestClient(app)


def test_files_are_served_with_their_type_length_and_validators(site: Path) -> None:
    client = client_for(site)
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert response.text == "body { color: red }\n"
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith("GMT")
    assert response.headers["accept-ranges"] == "bytes"
    assert "content-disposition" not in response.headers
    assert client.get("/static/data.json").headers["content-type"] == "application/json"
    assert client.get("/api").json() == "api"


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/css/%2E%2E/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/leak.txt",
        "/static/nothing.txt",
        "/static/hello.txt%00.png",
    ],
)
def test_nothing_outside_the_directory_is_served(site: Path, path: str) -> None:
    response = client_for(site).get(path)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    assert "top secret" not in response.text


def test_a_symlink_inside_the_directory_is_served_and_following_out_is_opt_in(
    site: Path,
) -> None:
    assert client_for(site).get("/static/alias.txt").text == "hello, static\n"
    assert client_for(site, follow_symlink=True).get("/static/leak.txt").text == "top secret"


def test_not_modified_answers_304_without_a_body(site: Path) -> None:
    client = client_for(site)
    first = client.get("/static/hello.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    again = client.get("/static/hello.txt", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert "content-length" not in again.headers
    assert (
        client.get("/static/hello.txt", headers={"if-none-match": f'W/{etag}, "x"'}).status_code
        == 304
    )
    assert client.get("/static/hello.txt", headers={"if-none-match": '"other"'}).status_code == 200
    since = client.get("/static/hello.txt", headers={"if-modified-since": modified})
    assert since.status_code == 304
    old = client.get(
        "/static/hello.txt", headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert old.status_code == 200
    # If-None-Match decides when both are given.
    both = client.get(
        "/static/hello.txt", headers={"if-none-match": '"other"', "if-modified-since": modified}
    )
    assert both.status_code == 200


def test_ranges_and_head(site: Path) -> None:
    client = client_for(site)
    part = client.get("/static/hello.txt", headers={"range": "bytes=0-4"})
    assert part.status_code == 206
    assert part.content == b"hello"
    assert part.headers["content-range"] == "bytes 0-4/14"
    assert client.get("/static/hello.txt", headers={"range": "bytes=99-"}).status_code == 416
    head = client.head("/static/hello.txt")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "14"


def test_only_get_and_head(site: Path) -> None:
    response = client_for(site).post("/static/hello.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_a_folder_is_not_a_file_without_html_mode(site: Path) -> None:
    client = client_for(site)
    assert client.get("/static/docs/").status_code == 404
    assert client.get("/static/nothing").json() == {"detail": "Not Found"}


def test_html_mode_serves_index_pages_and_the_404_page(site: Path) -> None:
    client = client_for(site, html=True)
    assert client.get("/static/").text == "<h1>home</h1>"
    assert client.get("/static/docs/").text == "<h1>docs</h1>"
    redirect = client.get("/static/docs", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "http://testserver/static/docs/"
    bare = client.get("/static", follow_redirects=False)
    assert bare.status_code == 307 and bare.headers["location"].endswith("/static/")
    missing = client.get("/static/nothing")
    assert missing.status_code == 404
    assert missing.text == "<h1>nothing here</h1>"
    assert missing.headers["content-type"] == "text/html; charset=utf-8"


def test_a_missing_directory_is_an_error_unless_not_checked(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=tmp_path / "nope")
    lazy = StaticFiles(directory=tmp_path / "later", check_dir=False)
    app = VelociPy()
    app.mount("/s", lazy)
    client = TestClient(app)
    assert client.get("/s/a.txt").status_code == 404
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "a.txt").write_text("now")
    assert client.get("/s/a.txt").text == "now"


def test_url_path_for_names_a_static_file(site: Path) -> None:
    app = VelociPy()
    app.mount("/static", StaticFiles(directory=site), name="static")
    assert app.url_path_for("static", path="/css/app.css") == "/static/css/app.css"
