"""The app's task is its own from its first line, on every server (see `velocipy.adapters._eager`).

The built-in server takes the first step of an ASGI app's task on the
connection's turn; these checks hold it to what a task started the usual way
gives (uvicorn, the reference, runs the same assertions): the same task before
and after the response, anyio's cancel scopes left where they were entered, and
no `contextvars` value leaking from one request to the next on a connection.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.asgi_spec.conftest import PARAMS, serving


@pytest.mark.server
@pytest.mark.parametrize("name", PARAMS)
def test_an_app_call_is_one_task_of_its_own_before_and_after_its_response(name: str) -> None:
    with serving(name, "tests.asgi_spec.task_app:app") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:  # one connection
            for number in range(3):
                assert client.get(f"/call{number}").text == "ok"
            time.sleep(0.5)  # each call's work after its response is done by now
            records = client.get("/report").json()
    assert records == [
        {"path": f"/call{number}", "leaked": None, "same_task": True, "own_task": True}
        for number in range(3)
    ]
