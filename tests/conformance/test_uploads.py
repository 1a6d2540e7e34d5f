"""Multipart uploads on every driver: streamed, spooled to disk, readable by tasks, limited."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import httpx

from tests.conformance.drivers import Driver, wait_for_events


def test_an_upload_with_a_field_is_read_spooled_and_handed_to_a_task(driver: Driver) -> None:
    key = uuid.uuid4().hex
    payload = os.urandom(300 * 1024)  # past the app's 64 KiB spool size: goes to disk
    response = driver.request(
        "POST",
        f"/upload/{key}",
        data={"note": "héllo"},
        files=[
            ("file", ("photo.bin", payload, "application/octet-stream")),
            ("extra", ("a.txt", b"a", "text/plain")),
            ("extra", ("b.txt", b"b", "text/plain")),
        ],
    )
    assert response.status_code == 200, response.text
    digest = hashlib.sha256(payload).hexdigest()
    assert response.json() == {
        "note": "héllo",
        "filename": "photo.bin",
        "content_type": "application/octet-stream",
        "size": len(payload),
        "sha256": digest,
        "on_disk": True,
        "extra": ["a.txt", "b.txt"],
    }
    assert wait_for_events(driver, key, 1) == [digest]


def test_bytes_and_urlencoded_forms(driver: Driver) -> None:
    payload = os.urandom(100 * 1024)
    response = driver.request(
        "POST", "/upload-bytes", data={"name": "x"}, files={"data": ("d", payload)}
    )
    assert response.json() == {
        "name": "x",
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    missing = driver.request("POST", "/upload-bytes", data={"name": "x"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "data"]


def test_upload_limits_and_malformed_bodies_are_4xx(driver: Driver) -> None:
    key = uuid.uuid4().hex
    too_many = driver.request(
        "POST",
        f"/upload/{key}",
        data={"note": "n"},
        files=[("extra", (f"{i}.txt", b"x")) for i in range(4)],
    )
    assert too_many.status_code == 400
    assert too_many.json() == {"detail": "Too many files. Maximum number of files is 3."}
    malformed = driver.request(
        "POST",
        f"/upload/{key}",
        content=b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert malformed.status_code == 400
    no_boundary = driver.request(
        "POST", f"/upload/{key}", content=b"x", headers={"content-type": "multipart/form-data"}
    )
    assert no_boundary.json() == {"detail": "Missing boundary in multipart."}
    too_large = driver.request(
        "POST", f"/upload/{key}", data={"note": "n"}, files={"file": ("f", b"x" * (9 << 20))}
    )
    assert too_large.status_code == 413
    assert driver.request("GET", "/hello").status_code == 200  # the server still serves


# -- Request.stream(), body() and form() read by the handler -------------------------------------


def test_request_stream_reads_the_body_as_it_arrives(driver: Driver) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 5)
    digest = hashlib.sha256(payload).hexdigest()
    # With a Content-Length, then chunked (httpx streams an iterator without one).
    whole = driver.request("POST", "/stream-digest", content=payload)
    assert whole.status_code == 200, whole.text
    assert whole.json()["size"] == len(payload) and whole.json()["sha256"] == digest
    assert whole.json()["pieces"] > 1  # read in pieces, not as one body

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(payload), 256 * 1024):
            yield payload[start : start + 256 * 1024]

    chunked = driver.request("POST", "/stream-digest", content=pieces())
    assert chunked.status_code == 200, chunked.text
    assert chunked.json()["size"] == len(payload) and chunked.json()["sha256"] == digest
    empty = driver.request("POST", "/stream-digest")
    assert empty.json() == {"size": 0, "sha256": hashlib.sha256().hexdigest(), "pieces": 0}


def test_a_handler_that_reads_part_of_the_body_leaves_the_server_serving(driver: Driver) -> None:
    first = driver.request("POST", "/stream-first", content=b"y" * (200 * 1024))
    assert first.status_code == 200 and 0 < first.json() <= 200 * 1024
    try:
        hello = driver.request("GET", "/hello")
    except httpx.RemoteProtocolError:
        # gunicorn drains an unread body after the response within its own bounds, and
        # past them closes the connection (as with any WSGI app); a new one is served.
        assert driver.name.startswith("gunicorn")
        hello = driver.request("GET", "/hello")
    assert hello.json() == {"message": "hello"}


def test_body_is_kept_for_stream_and_a_consumed_stream_is_an_error(driver: Driver) -> None:
    twice = driver.request("POST", "/body-twice", content=b"z" * 100_000)
    assert twice.json() == {"size": 100_000, "same": True, "stream_again": "no error"}
    consumed = driver.request("POST", "/stream-consumed", content=b"abc")
    assert consumed.json() == "Stream consumed"


def test_request_form_streams_multipart_with_per_call_limits(driver: Driver) -> None:
    payload = os.urandom(200 * 1024)  # past the 64 KiB spool size
    ok = driver.request(
        "POST", "/request-form", data={"a": "1", "b": "2"}, files={"file": ("f", payload)}
    )
    assert ok.json() == {"fields": ["a", "b"], "size": len(payload), "on_disk": True}
    files = driver.request(
        "POST", "/request-form", files=[("file", ("f", b"1")), ("other", ("g", b"2"))]
    )
    assert files.status_code == 400
    assert files.json() == {"detail": "Too many files. Maximum number of files is 1."}
    part = driver.request(  # a multipart field (urlencoded ones have no part size, as Starlette)
        "POST", "/request-form", data={"a": "x" * 101}, files={"file": ("f", b"")}
    )
    assert part.status_code == 400
    urlencoded = driver.request("POST", "/request-form", data={"c": "3"})
    assert urlencoded.json() == {"fields": ["c"], "size": None, "on_disk": None}


def test_request_stream_through_middleware(middleware_driver: Driver) -> None:
    out = middleware_driver.request("POST", "/mw/stream-body", content=b"m" * 300_000)
    assert out.status_code == 200, out.text
    assert out.json() == {"size": 300_000, "trail": ["outer", "inner"]}


def test_a_middleware_reads_the_body_and_the_handler_still_gets_it(
    middleware_driver: Driver,
) -> None:
    body = b'{"a": "' + b"b" * 1000 + b'"}'
    out = middleware_driver.request(
        "POST", "/mw/body-seen", content=body, headers={"content-type": "application/json"}
    )
    assert out.status_code == 200, out.text
    assert out.json() == {"seen": len(body), "item": {"a": "b" * 1000}, "stream": len(body)}
