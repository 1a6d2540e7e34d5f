"""Probe for tests/test_xdist_groups.py: run by an inner pytest, never by the default run.

Its name does not match `test_*.py`, so only a pytest given this file collects it. Each
test appends `<event> <param> <pid>` to the file named by `VELOCIPY_PROBE_LOG`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def _log(event: str, param: str) -> None:
    with open(os.environ["VELOCIPY_PROBE_LOG"], "a") as file:
        file.write(f"{event} {param} {os.getpid()}\n")


@pytest.fixture(scope="session", params=["a", "b", "c"])
def shared(request: pytest.FixtureRequest) -> Iterator[str]:
    """Stands for a server: one instance per parameter, costly to start twice."""
    _log("setup", request.param)
    yield request.param


@pytest.mark.parametrize("case", range(4))
def test_uses_the_shared_instance(shared: str, case: int) -> None:
    _log("test", shared)


@pytest.mark.parametrize("case", range(4))
def test_alone(case: int) -> None:
    _log("test", "-")
