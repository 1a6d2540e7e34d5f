"""The uvicorn driver (h11 parser): `python -m uvicorn tests.conformance.app:app` in a subprocess.

`running_uvicorn` is shared with the httptools variant. One worker process, so
the app's module-level `EVENTS` is the one every request sees; a log config adds
the `velocipy` logger (level, name, message, traceback) to uvicorn's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tests.conformance.drivers import HTTPDriver, http_driver
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server
from tests.support.servers import log_config_file as server_log_config

#: The uvicorn loggers the tests read, beside `velocipy`.
SERVER_LOGGERS: dict[str, Any] = {
    "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
}


def log_config_file() -> contextlib.AbstractContextManager[str]:
    """The logging config for `uvicorn`, written to a temporary JSON file."""
    return server_log_config(SERVER_LOGGERS)


@contextlib.contextmanager
def uvicorn_process(
    target: str, http: str, *extra: str, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A `uvicorn` subprocess serving `target` on a free port, stopped afterwards."""
    port = free_port()
    with log_config_file() as log_config:
        argv = [
            PYTHON,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--http",
            http,
            "--log-config",
            log_config,
            *extra,
        ]
        with run_server(argv, port=port, env=env) as server:
            yield server


@contextlib.contextmanager
def running_uvicorn(http: str, module: str = "tests.conformance.app") -> Iterator[HTTPDriver]:
    with (
        uvicorn_process(f"{module}:app", http) as server,
        http_driver(f"uvicorn-{http}", server) as driver,
    ):
        yield driver


@contextlib.contextmanager
def running(module: str = "tests.conformance.app") -> Iterator[HTTPDriver]:
    with running_uvicorn("h11", module) as driver:
        yield driver
