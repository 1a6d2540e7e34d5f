"""Runs every conformance test once per driver: in-process and on each real server."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from tests.conformance.drivers import Driver

#: driver name -> module under tests/conformance/drivers defining `running()`.
DRIVERS = {
    "testclient": "testclient",
    "uvicorn-h11": "uvicorn_h11",
    "uvicorn-httptools": "uvicorn_httptools",
    "gunicorn-sync": "gunicorn_sync",
    "gunicorn-gthread": "gunicorn_gthread",
    "server": "server",
    "server-h11": "server_h11",
}


@pytest.fixture(scope="session", params=list(DRIVERS))
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    module = importlib.import_module(f"tests.conformance.drivers.{DRIVERS[request.param]}")
    with module.running() as running_driver:
        yield running_driver


@pytest.fixture(scope="session", params=list(DRIVERS))
def middleware_driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Each driver serving `tests/conformance/middleware_app.py` (an app with middleware)."""
    module = importlib.import_module(f"tests.conformance.drivers.{DRIVERS[request.param]}")
    with module.running("tests.conformance.middleware_app") as running_driver:
        yield running_driver


@pytest.fixture(scope="session", params=list(DRIVERS))
def mount_driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    """Each driver serving `tests/conformance/mount_app.py` (a VelociPy app and
    `StaticFiles` mounted)."""
    module = importlib.import_module(f"tests.conformance.drivers.{DRIVERS[request.param]}")
    with module.running("tests.conformance.mount_app") as running_driver:
        yield running_driver
