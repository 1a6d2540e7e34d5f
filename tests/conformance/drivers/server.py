"""The built-in server driver: `python -m velocipy run tests.conformance.app:app` in a subprocess.

One process (so the app's module-level `EVENTS` is shared), a keep-alive httpx
client, and the server's own log lines (`velocipy`, `velocipy.server`) as the log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.servers import PYTHON, ServerProcess, free_port, run_server


class ServerDriver:
    """Talks to a `velocipy run` subprocess over one keep-alive httpx connection."""

    name = "server"

    def __init__(self, server: ServerProcess, client: httpx.Client) -> None:
        self.server = server
        self.client = client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, path, **kwargs)

    def log_text(self) -> str:
        return self.server.logs()


@contextlib.contextmanager
def running() -> Iterator[ServerDriver]:
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "velocipy",
        "run",
        "tests.conformance.app:app",
        "--port",
        str(port),
        "--no-access-log",
        "--graceful-timeout",
        "5",
    ]
    with run_server(argv, port=port) as server:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            yield ServerDriver(server, client)
