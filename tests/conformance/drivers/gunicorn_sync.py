"""The gunicorn driver, sync worker: `python -m gunicorn tests.conformance.app:wsgi -k sync`.

`gunicorn_process` and `running_gunicorn` are shared with the gthread variant.
One worker process, so the app's module-level `EVENTS` is the one every request
sees; a log config puts the `velocipy` logger (level, name, message, traceback)
on gunicorn's stderr next to its own error log. gunicorn is started plainly,
without velocipy's hooks: the adapter finds the worker by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tests.conformance.drivers import HTTPDriver, http_driver
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server
from tests.support.servers import log_config_file as server_log_config

#: The gunicorn loggers the tests read, beside `velocipy`.
SERVER_LOGGERS: dict[str, Any] = {
    "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
}


def log_config_file() -> contextlib.AbstractContextManager[str]:
    """The logging config for `gunicorn`, written to a temporary JSON file."""
    return server_log_config(SERVER_LOGGERS, root={"handlers": ["stderr"], "level": "WARNING"})


@contextlib.contextmanager
def gunicorn_process(
    target: str, worker_class: str, *extra: str, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A one-worker `gunicorn` subprocess serving `target` on a free port, stopped afterwards."""
    port = free_port()
    threads = ["--threads", "4"] if worker_class == "gthread" else []
    with log_config_file() as log_config:
        argv = [
            PYTHON,
            "-m",
            "gunicorn",
            target,
            "-b",
            f"127.0.0.1:{port}",
            "-k",
            worker_class,
            "-w",
            "1",
            *threads,
            "--log-config-json",
            log_config,
            *extra,
        ]
        with run_server(argv, port=port, env=env) as server:
            yield server


@contextlib.contextmanager
def running_gunicorn(
    worker_class: str, module: str = "tests.conformance.app"
) -> Iterator[HTTPDriver]:
    with (
        gunicorn_process(f"{module}:wsgi", worker_class) as server,
        http_driver(f"gunicorn-{worker_class}", server) as driver,
    ):
        yield driver


@contextlib.contextmanager
def running(module: str = "tests.conformance.app") -> Iterator[HTTPDriver]:
    with running_gunicorn("sync", module) as driver:
        yield driver
