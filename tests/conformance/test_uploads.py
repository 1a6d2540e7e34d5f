"""Multipart uploads on every driver: streamed, spooled to disk, readable by tasks, limited."""

from __future__ import annotations

import hashlib
import os
import uuid

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
