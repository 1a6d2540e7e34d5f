"""The in-process driver: `velocipy.testing.TestClient`; logs captured from `velocipy`."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
from collections.abc import Iterator
from typing import Any

from velocipy.testing import TestClient, TestResponse


class TestClientDriver:
    __test__ = False
    name = "testclient"

    def __init__(self, client: TestClient, log: io.StringIO) -> None:
        self.client = client
        self._log = log

    def request(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        return self.client.request(method, path, **kwargs)

    def log_text(self) -> str:
        return self._log.getvalue()


@contextlib.contextmanager
def running(module: str = "tests.conformance.app") -> Iterator[TestClientDriver]:
    app = importlib.import_module(module).app
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("velocipy")
    logger.addHandler(handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield TestClientDriver(client, log)
    finally:
        logger.removeHandler(handler)
