"""Routing and response features that touch the wire, on every driver: the trailing-slash
redirect, `FileResponse` with `Range`, and a response model with the `Response` parameter."""

from __future__ import annotations

from tests.conformance.app import file_bytes
from tests.conformance.drivers import Driver


def test_trailing_slash_redirects_with_307(driver: Driver) -> None:
    added = driver.request("GET", "/slash/", params={"q": "1"}, follow_redirects=False)
    assert added.status_code == 307
    assert added.headers["location"].endswith("/slash?q=1")
    assert added.headers["location"].startswith("http://")
    missing = driver.request("POST", "/slashed", follow_redirects=False)
    assert missing.status_code == 307
    assert missing.headers["location"].endswith("/slashed/")
    assert driver.request("GET", "/slash").json() == "no trailing slash"
    followed = driver.request("GET", "/slash/", follow_redirects=True)
    assert (followed.status_code, followed.json()) == (200, "no trailing slash")
    assert driver.request("GET", "/nowhere/").status_code == 404


def test_a_file_is_streamed_whole_with_its_validators(driver: Driver) -> None:
    data = file_bytes()
    whole = driver.request("GET", "/file")
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["content-length"] == str(len(data))
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] and whole.headers["last-modified"].endswith("GMT")
    head = driver.request("HEAD", "/file")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(data))


def test_a_range_is_answered_with_206(driver: Driver) -> None:
    data = file_bytes()
    part = driver.request("GET", "/file", headers={"Range": "bytes=70000-140099"})
    assert part.status_code == 206
    assert part.content == data[70000:140100]
    assert part.headers["content-length"] == "70100"
    assert part.headers["content-range"] == f"bytes 70000-140099/{len(data)}"
    suffix = driver.request("GET", "/file", headers={"Range": "bytes=-7"})
    assert (suffix.status_code, suffix.content) == (206, data[-7:])
    refused = driver.request("GET", "/file", headers={"Range": f"bytes={len(data)}-"})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{len(data)}"


def test_a_response_model_filters_and_the_response_parameter_applies(driver: Driver) -> None:
    out = driver.request("GET", "/public-user")
    assert out.status_code == 203
    assert out.json() == {"name": "ada"}
    assert out.headers["x-model"] == "PublicUser"
    assert out.headers["set-cookie"] == "seen=1; Path=/; SameSite=lax"
