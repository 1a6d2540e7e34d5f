"""The gunicorn driver, gthread worker (4 threads, keep-alive): see `gunicorn_sync`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.conformance.drivers import HTTPDriver
from tests.conformance.drivers.gunicorn_sync import running_gunicorn


@contextlib.contextmanager
def running(module: str = "tests.conformance.app") -> Iterator[HTTPDriver]:
    with running_gunicorn("gthread", module) as driver:
        yield driver
