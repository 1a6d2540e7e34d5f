"""The uvicorn driver (h11 parser): `python -m uvicorn tests.conformance.app:app` in a subprocess.

`running_uvicorn` is shared with the httptools variant. One worker process, so
the app's module-level `EVENTS` is the one every request sees; a log config adds
the `velocipy` logger (level, name, message, traceback) to uvicorn's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from tests.conformance.drivers import HTTPDriver, http_driver
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

#: uvicorn's own loggers as it configures them, plus `velocipy` on the same stream.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        "velocipy": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


@contextlib.contextmanager
def log_config_file() -> Iterator[str]:
    """`LOG_CONFIG` written to a temporary JSON file, for `uvicorn --log-config`."""
    handle, path = tempfile.mkstemp(prefix="velocipy-uvicorn-log-", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(LOG_CONFIG, file)
    try:
        yield path
    finally:
        os.unlink(path)


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
def running_uvicorn(http: str) -> Iterator[HTTPDriver]:
    with (
        uvicorn_process("tests.conformance.app:app", http) as server,
        http_driver(f"uvicorn-{http}", server) as driver,
    ):
        yield driver


@contextlib.contextmanager
def running() -> Iterator[HTTPDriver]:
    with running_uvicorn("h11") as driver:
        yield driver
