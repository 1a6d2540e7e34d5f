"""`curl` against every real server: a CORS preflight and a gzip response.

The conformance suite checks the same middleware with httpx; this is the
check with another client that users reach for first, run against the
built-in server (both parsers), uvicorn and gunicorn serving
`tests/conformance/middleware_app.py`. Skipped when curl is missing
(.ci/run installs it).
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tests.conformance.drivers import HTTPDriver

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed")

#: driver module under tests/conformance/drivers -> a name for the test ids.
SERVERS = {
    "server": "server-httptools",
    "server_h11": "server-h11",
    "uvicorn_httptools": "uvicorn-httptools",
    "gunicorn_gthread": "gunicorn-gthread",
}
ORIGIN = "https://ui.example"


@pytest.fixture(scope="module", params=list(SERVERS), ids=list(SERVERS.values()))
def server(request: pytest.FixtureRequest) -> Iterator[HTTPDriver]:
    module = importlib.import_module(f"tests.conformance.drivers.{request.param}")
    with module.running("tests.conformance.middleware_app") as driver:
        yield driver


def curl(*args: str) -> tuple[str, bytes]:
    """Run curl; return the response head (as curl wrote it) and the raw body."""
    with contextlib.ExitStack() as stack:
        head = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".head"))
        body = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".body"))
        assert CURL is not None
        subprocess.run(
            [
                CURL,
                "--silent",
                "--show-error",
                "--max-time",
                "20",
                "-D",
                head.name,
                "-o",
                body.name,
                *args,
            ],
            check=True,
            timeout=30,
        )
        return open(head.name).read(), open(body.name, "rb").read()


def header(head: str, name: str) -> list[str]:
    """Every value of header `name` in a head as curl dumps it."""
    found = []
    for line in head.splitlines()[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            found.append(value.strip())
    return found


def test_a_cors_preflight_with_curl(server: HTTPDriver) -> None:
    head, body = curl(
        "-X",
        "OPTIONS",
        "-H",
        f"Origin: {ORIGIN}",
        "-H",
        "Access-Control-Request-Method: POST",
        "-H",
        "Access-Control-Request-Headers: X-Token",
        f"{server.server.url}/hello",
    )
    assert head.startswith("HTTP/1.1 200"), head
    assert header(head, "access-control-allow-origin") == [ORIGIN]
    assert header(head, "access-control-allow-methods") == ["GET, POST"]
    assert "x-token" in header(head, "access-control-allow-headers")[0].lower()
    assert body == b"OK"
    head, body = curl(
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://evil.example",
        "-H",
        "Access-Control-Request-Method: POST",
        f"{server.server.url}/hello",
    )
    assert head.startswith("HTTP/1.1 400"), head
    assert header(head, "access-control-allow-origin") == []


def test_a_gzip_response_with_curl(server: HTTPDriver) -> None:
    # Without --compressed, so that the bytes on the wire are checked as they came.
    head, body = curl("-H", "Accept-Encoding: gzip", f"{server.server.url}/mw/big")
    assert head.startswith("HTTP/1.1 200"), head
    assert header(head, "content-encoding") == ["gzip"]
    assert "Accept-Encoding" in ", ".join(header(head, "vary"))
    text = gzip.decompress(body).decode()
    assert text == "VelociPy middleware " * 100
    assert int(header(head, "content-length")[0]) == len(body) < len(text)
    # And curl's own decoding agrees.
    _, decoded = curl("--compressed", f"{server.server.url}/mw/big")
    assert decoded.decode() == text
    plain_head, plain = curl(f"{server.server.url}/mw/big")
    assert header(plain_head, "content-encoding") == []
    assert plain.decode() == text
