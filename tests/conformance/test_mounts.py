"""Mounts on every driver: a mounted VelociPy app (routes, middleware, lifespan, tasks)
and `StaticFiles` (types, validators, 304, ranges, HEAD, traversal, HTML mode).

The app is `tests/conformance/mount_app.py`.
"""

from __future__ import annotations

import uuid

import pytest

from tests.conformance.drivers import Driver, wait_for_events
from tests.conformance.mount_app import BIG, FILES, SECRET


def test_a_mounted_app_sees_its_path_and_root_path(mount_driver: Driver) -> None:
    response = mount_driver.request("GET", "/sub/where")
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "/where"
    assert body["root_path"] == "/sub"
    assert body["url"].endswith("/sub/where")
    # Its lifespan ran with the parent's; its middleware and the parent's both ran.
    assert body["started"] == "by the parent's lifespan"
    assert response.headers["x-sub"] == "yes"
    assert response.headers["x-parent"] == "yes"


def test_a_mounted_apps_tasks_run_after_its_response(mount_driver: Driver) -> None:
    key = uuid.uuid4().hex[:12]
    response = mount_driver.request("POST", f"/sub/work/{key}")
    assert response.status_code == 200 and response.json() == "accepted"
    assert wait_for_events(mount_driver, key, 2) == ["handler", "task"]


def test_the_bare_mount_path_redirects_and_unknown_paths_are_404(mount_driver: Driver) -> None:
    redirect = mount_driver.request("GET", "/sub", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/sub/")
    assert mount_driver.request("GET", "/sub/nothing").status_code == 404
    assert mount_driver.request("GET", "/nothing").status_code == 404


def test_static_files_are_served_with_validators_and_type(mount_driver: Driver) -> None:
    response = mount_driver.request("GET", "/static/css/app.css")
    assert response.status_code == 200
    assert response.text == FILES["css/app.css"]
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["etag"]
    assert response.headers["last-modified"]
    assert response.headers["x-parent"] == "yes"  # the parent's middleware wraps mounts
    big = mount_driver.request("GET", "/static/big.txt")
    assert big.status_code == 200 and big.text == BIG


def test_static_files_answer_304_when_not_modified(mount_driver: Driver) -> None:
    first = mount_driver.request("GET", "/static/hello.txt")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    again = mount_driver.request("GET", "/static/hello.txt", headers={"if-none-match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    since = mount_driver.request(
        "GET", "/static/hello.txt", headers={"if-modified-since": modified}
    )
    assert since.status_code == 304


def test_static_files_answer_ranges_and_head(mount_driver: Driver) -> None:
    part = mount_driver.request("GET", "/static/hello.txt", headers={"range": "bytes=7-12"})
    assert part.status_code == 206
    assert part.content == b"static"
    assert part.headers["content-range"] == "bytes 7-12/14"
    head = mount_driver.request("HEAD", "/static/big.txt")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(BIG))


@pytest.mark.parametrize(
    "path",
    [
        "/static/%2e%2e/secret.txt",
        "/static/css/%2E%2E/%2e%2e/secret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static//etc/passwd",
        "/static/leak.txt",
    ],
)
def test_static_files_never_leave_their_folder(mount_driver: Driver, path: str) -> None:
    response = mount_driver.request("GET", path)
    assert response.status_code == 404
    assert SECRET not in response.text


def test_static_files_in_html_mode(mount_driver: Driver) -> None:
    assert mount_driver.request("GET", "/site/").text == FILES["index.html"]
    assert mount_driver.request("GET", "/site/docs/").text == FILES["docs/index.html"]
    redirect = mount_driver.request("GET", "/site/docs", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/site/docs/")
    missing = mount_driver.request("GET", "/site/nothing")
    assert missing.status_code == 404
    assert missing.text == FILES["404.html"]


def test_static_files_take_only_get_and_head(mount_driver: Driver) -> None:
    response = mount_driver.request("DELETE", "/static/hello.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
