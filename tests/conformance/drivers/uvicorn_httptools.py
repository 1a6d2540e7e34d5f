"""The uvicorn driver with the httptools parser (and uvloop when installed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.conformance.drivers import HTTPDriver
from tests.conformance.drivers.uvicorn_h11 import running_uvicorn


@contextlib.contextmanager
def running(module: str = "tests.conformance.app") -> Iterator[HTTPDriver]:
    pytest.importorskip("httptools")
    with running_uvicorn("httptools", module) as driver:
        yield driver
