"""The built-in server driver: `python -m velocipy run tests.conformance.app:app` in a subprocess.

One process (so the app's module-level `EVENTS` is shared), a keep-alive httpx
client, and the server's own log lines (`velocipy`, `velocipy.server`) as the log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.conformance.drivers import HTTPDriver, http_driver
from tests.support.servers import PYTHON, free_port, run_server


@contextlib.contextmanager
def running(module: str = "tests.conformance.app", http: str = "httptools") -> Iterator[HTTPDriver]:
    """The server with the request parser `http` (the h11 one: `server_h11`)."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "velocipy",
        "run",
        f"{module}:app",
        "--port",
        str(port),
        "--no-access-log",
        "--graceful-timeout",
        "5",
        "--http",
        http,
    ]
    with run_server(argv, port=port) as server, http_driver("server", server) as driver:
        yield driver
