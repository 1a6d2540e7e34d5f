"""What is measured: scenarios, server configurations, and the baseline each is compared to.

A configuration is one app on one server, started as its own process. The
three baselines are measured in the same run as everything compared to them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from typing import Any

PY = sys.executable


@dataclass(frozen=True)
class Scenario:
    """One request, repeated: what to send and the JSON every app must answer with."""

    name: str
    method: str
    path: str
    body: bytes
    expected: Any


SCENARIOS = (
    Scenario("hello", "GET", "/hello", b"", {"message": "hello"}),
    Scenario(
        "signup",
        "POST",
        "/signup",
        json.dumps({"email": "ada@example.com", "name": "Ada"}).encode(),
        {"status": "ok", "email": "ada@example.com"},
    ),
    Scenario("items", "GET", "/items/42?q=abc", b"", {"item_id": 42, "q": "abc", "owner": "bench"}),
)

#: Labels used in the report.
SCENARIO_TITLES = {
    "hello": "GET /hello",
    "signup": "POST /signup + task",
    "items": "GET /items/{id}?q= + dependency",
}

BASE_ASGI_HTTPTOOLS = "bare-asgi/uvicorn-httptools"
BASE_ASGI_H11 = "bare-asgi/uvicorn-h11"
BASE_WSGI = "bare-wsgi/gunicorn-gthread"
BASELINES = (BASE_ASGI_HTTPTOOLS, BASE_ASGI_H11, BASE_WSGI)

#: uvicorn's event loop: uvloop when installed (what `uvicorn[standard]` users get), else asyncio.
UVICORN_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"

#: gunicorn gthread settings shared by every WSGI configuration.
GTHREAD_THREADS = 8


@dataclass(frozen=True)
class Config:
    """One app on one server.

    `argv` is a template: `{port}` is filled in; `baseline` names the
    configuration this one's figures are divided by (None for a baseline).
    """

    name: str
    framework: str
    server: str
    argv: tuple[str, ...]
    baseline: str | None
    ours: bool = False

    def command(self, port: int) -> list[str]:
        return [part.format(port=port) for part in self.argv]


def uvicorn(target: str, http: str) -> tuple[str, ...]:
    return (
        PY, "-m", "uvicorn", f"bench.apps.{target}", "--host", "127.0.0.1", "--port", "{port}",
        "--http", http, "--loop", UVICORN_LOOP, "--no-access-log", "--log-level", "warning",
    )  # fmt: skip


def gunicorn(target: str) -> tuple[str, ...]:
    return (
        PY, "-m", "gunicorn", f"bench.apps.{target}", "-k", "gthread", "--workers", "1",
        "--threads", str(GTHREAD_THREADS), "--bind", "127.0.0.1:{port}",
        "--log-level", "warning",
    )  # fmt: skip


OWN_SERVER = (
    PY, "-m", "velocipy", "run", "bench.apps.velocipy_app:app",
    "--host", "127.0.0.1", "--port", "{port}", "--loop", UVICORN_LOOP, "--http", "h11",
    "--no-access-log", "--log-level", "warning",
)  # fmt: skip
#: The built-in server's fast path (issue 14): llhttp's parser on uvloop.
OWN_SERVER_HTTPTOOLS = (
    PY, "-m", "velocipy", "run", "bench.apps.velocipy_app:app",
    "--host", "127.0.0.1", "--port", "{port}", "--loop", UVICORN_LOOP, "--http", "httptools",
    "--no-access-log", "--log-level", "warning",
)  # fmt: skip
#: The built-in server hosting the bare ASGI app (issue 14: any ASGI app on `velocipy run`):
#: beside uvicorn with the same app, the cost of the server's ASGI path.
OWN_SERVER_BARE_ASGI = (
    PY, "-m", "velocipy", "run", "bench.apps.bare_asgi:app",
    "--host", "127.0.0.1", "--port", "{port}", "--loop", UVICORN_LOOP, "--http", "h11",
    "--no-access-log", "--log-level", "warning",
)  # fmt: skip
OWN_SERVER_BARE_ASGI_HTTPTOOLS = tuple(
    "httptools" if part == "h11" else part for part in OWN_SERVER_BARE_ASGI
)
#: granian (a Rust server, ASGI mode) serving the bare ASGI app: a further reference row.
GRANIAN = (
    PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
    "--workers", "1", "--no-ws", "--log-level", "warning", "bench.apps.bare_asgi:app",
)  # fmt: skip


def idle_options(config: Config, connections: int) -> list[str]:
    """Extra server options so `connections` idle keep-alive connections are all served and kept."""
    if config.server.startswith("own server"):
        return ["--max-connections", str(connections + 100), "--keepalive-timeout", "300"]
    if config.server.startswith("uvicorn"):
        return ["--timeout-keep-alive", "300"]
    return ["--keep-alive", "300", "--worker-connections", str(connections + 100)]


_HTTPTOOLS, _H11 = "uvicorn httptools", "uvicorn h11"
_GTHREAD = "gunicorn gthread"

CONFIGS = (
    Config(BASE_ASGI_HTTPTOOLS, "bare ASGI", _HTTPTOOLS,
           uvicorn("bare_asgi:app", "httptools"), None),
    Config(BASE_ASGI_H11, "bare ASGI", _H11, uvicorn("bare_asgi:app", "h11"), None),
    Config(BASE_WSGI, "bare WSGI", _GTHREAD, gunicorn("bare_wsgi:wsgi"), None),
    Config("velocipy/own-server", "VelociPy", "own server", OWN_SERVER, BASE_ASGI_H11, True),
    Config("velocipy/own-server-httptools", "VelociPy", "own server httptools",
           OWN_SERVER_HTTPTOOLS, BASE_ASGI_HTTPTOOLS, True),
    Config("bare-asgi/granian", "bare ASGI", "granian", GRANIAN, BASE_ASGI_HTTPTOOLS),
    Config("bare-asgi/own-server", "bare ASGI", "own server", OWN_SERVER_BARE_ASGI,
           BASE_ASGI_H11),
    Config("bare-asgi/own-server-httptools", "bare ASGI", "own server httptools",
           OWN_SERVER_BARE_ASGI_HTTPTOOLS, BASE_ASGI_HTTPTOOLS),
    Config("velocipy/uvicorn-httptools", "VelociPy", _HTTPTOOLS,
           uvicorn("velocipy_app:app", "httptools"), BASE_ASGI_HTTPTOOLS, True),
    Config("velocipy/uvicorn-h11", "VelociPy", _H11,
           uvicorn("velocipy_app:app", "h11"), BASE_ASGI_H11, True),
    Config("velocipy/gunicorn-gthread", "VelociPy", _GTHREAD,
           gunicorn("velocipy_app:wsgi"), BASE_WSGI, True),
    Config("starlette/uvicorn-httptools", "Starlette", _HTTPTOOLS,
           uvicorn("starlette_app:app", "httptools"), BASE_ASGI_HTTPTOOLS),
    Config("fastapi/uvicorn-httptools", "FastAPI", _HTTPTOOLS,
           uvicorn("fastapi_app:app", "httptools"), BASE_ASGI_HTTPTOOLS),
    Config("falcon-asgi/uvicorn-httptools", "Falcon ASGI", _HTTPTOOLS,
           uvicorn("falcon_apps:asgi", "httptools"), BASE_ASGI_HTTPTOOLS),
    Config("falcon-wsgi/gunicorn-gthread", "Falcon WSGI", _GTHREAD,
           gunicorn("falcon_apps:wsgi"), BASE_WSGI),
)  # fmt: skip

BY_NAME = {config.name: config for config in CONFIGS}

#: What `--quick` measures: the baselines and VelociPy everywhere (peers add time, not signal
#: while optimising).
QUICK = tuple(c.name for c in CONFIGS if c.baseline is None or c.ours)

#: What `--smoke` measures: one baseline and VelociPy on the same server (both need only uvicorn).
SMOKE = (BASE_ASGI_H11, "velocipy/uvicorn-h11")

#: The targets from issue 6: (config, scenario) -> minimum ratio to its baseline.
TARGETS = {
    ("velocipy/uvicorn-httptools", "hello"): 0.75,
    ("velocipy/uvicorn-httptools", "signup"): 0.65,
    ("velocipy/own-server", "hello"): 1.0,
    ("velocipy/own-server", "signup"): 1.0,
    ("velocipy/own-server-httptools", "hello"): 1.0,
    ("velocipy/own-server-httptools", "signup"): 0.9,
    ("velocipy/gunicorn-gthread", "hello"): 0.95,
    ("velocipy/gunicorn-gthread", "signup"): 0.95,
}
#: p99 of POST /signup with a 1 s task, at most this times p99 without.
P99_RATIO_TARGET = 1.1
#: Core overhead for GET /hello, at most this many microseconds.
CORE_US_TARGET = 10.0
