"""The built-in server driver on its pure-Python parser: `velocipy run --http h11`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.conformance.drivers import HTTPDriver
from tests.conformance.drivers.server import running as running_server


@contextlib.contextmanager
def running(module: str = "tests.conformance.app") -> Iterator[HTTPDriver]:
    with running_server(module, http="h11") as driver:
        yield driver
