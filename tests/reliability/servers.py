"""Each real server the reliability tests use, serving `tests/reliability/app.py`.

`serve(name)` starts one in a subprocess on a free port (through the shared
harness, so it is bounded in time and always stopped) with the `velocipy` logger
on its output; `ran(server)` lists the tags of the tasks that have run so far.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

from tests.conformance.drivers.gunicorn_sync import gunicorn_process
from tests.conformance.drivers.uvicorn_h11 import uvicorn_process
from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

#: The servers, by the names tests and the bench use.
SERVERS = ("velocipy", "uvicorn", "gunicorn-gthread", "gunicorn-sync")

TARGET = "tests.reliability.app"


@contextlib.contextmanager
def serve(name: str, *, graceful: float = 5.0) -> Iterator[ServerProcess]:
    """Serve the reliability app on server `name`, which stops within `graceful` seconds."""
    if name == "velocipy":
        port = free_port()
        argv = [
            PYTHON,
            "-m",
            "velocipy",
            "run",
            f"{TARGET}:app",
            "--port",
            str(port),
            "--no-access-log",
            "--graceful-timeout",
            str(graceful),
        ]
        with run_server(argv, port=port) as server:
            yield server
    elif name == "uvicorn":
        with uvicorn_process(
            f"{TARGET}:app", "h11", "--timeout-graceful-shutdown", str(math.ceil(graceful))
        ) as server:
            yield server
    elif name.startswith("gunicorn-"):
        worker_class = name.removeprefix("gunicorn-")
        with gunicorn_process(
            f"{TARGET}:wsgi", worker_class, "--graceful-timeout", str(math.ceil(graceful))
        ) as server:
            yield server
    else:
        raise ValueError(f"unknown server {name!r}")


def ran(server: ServerProcess) -> list[str]:
    """The tags of the tasks that have run so far, in the order they printed."""
    return [
        line.removeprefix("ran: ")
        for line in server.logs().splitlines()
        if line.startswith("ran: ")
    ]


def wait_until_ran(server: ServerProcess, tags: set[str], timeout: float) -> set[str]:
    """Wait until every tag in `tags` has run, or `timeout` passed; return those that ran."""
    deadline = time.monotonic() + timeout
    while True:
        seen = tags.intersection(ran(server))
        if seen == tags or time.monotonic() > deadline or server.process.poll() is not None:
            return seen
        time.sleep(0.05)
