"""Conformance drivers: one way each of serving `tests/conformance/app.py` and talking to it.

A driver module defines `running() -> ContextManager[Driver]`. `conftest.py`
lists every module; each test in this folder runs once per driver.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any, Protocol

import httpx

from tests.support.servers import ServerProcess


class Reply(Protocol):
    """The parts of a response conformance tests look at (httpx's and TestClient's both fit)."""

    status_code: int

    @property
    def headers(self) -> Any: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


class Driver(Protocol):
    name: str

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        """Send a request (`json=`, `content=`, `headers=`, `params=` as in httpx)."""
        ...

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        ...


class HTTPDriver:
    """Talks to a real server subprocess over one keep-alive httpx client; its output is the log."""

    def __init__(self, name: str, server: ServerProcess, client: httpx.Client) -> None:
        self.name = name
        self.server = server
        self.client = client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def log_text(self) -> str:
        return self.server.logs()


@contextlib.contextmanager
def http_driver(name: str, server: ServerProcess) -> Iterator[HTTPDriver]:
    """An `HTTPDriver` for `server`, its client closed afterwards."""
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        yield HTTPDriver(name, server, client)


def wait_for_events(driver: Driver, key: str, count: int, timeout: float = 10.0) -> list[str]:
    """Poll `GET /_events/{key}` until `count` events are recorded or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[str] = driver.request("GET", f"/_events/{key}").json()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def wait_for_log(driver: Driver, text: str, timeout: float = 10.0) -> str:
    """Wait until `text` appears in the server's log; return the whole log."""
    deadline = time.monotonic() + timeout
    while True:
        logs = driver.log_text()
        if text in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.02)
