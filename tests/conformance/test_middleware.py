"""Middleware on every driver: ordering, short-circuits, header and status changes,
streaming, failures, CORS and gzip, and background tasks after the outermost response.

The app is `tests/conformance/middleware_app.py`.
"""

from __future__ import annotations

import gzip
import time
import uuid

import pytest

from tests.conformance.drivers import Driver, wait_for_events, wait_for_log

ORIGIN = "https://ui.example"


def new_key() -> str:
    return uuid.uuid4().hex[:12]


def test_middleware_runs_outermost_first_and_shares_request_state(
    middleware_driver: Driver,
) -> None:
    response = middleware_driver.request("GET", "/mw/trail")
    assert response.status_code == 200
    assert response.json() == {"trail": ["outer", "inner"]}
    # On the way out the order reverses: inner tags the response first.
    assert _trail(response) == ["inner", "outer"]


def _trail(response: object) -> list[str]:
    headers = response.headers  # type: ignore[attr-defined]
    # httpx's headers have `get_list`, the TestClient's `getlist`.
    getter = headers.get_list if hasattr(headers, "get_list") else headers.getlist
    values = getter("x-trail")
    return [part.strip() for value in values for part in value.split(",")]


def test_a_middleware_may_answer_without_calling_the_app(middleware_driver: Driver) -> None:
    response = middleware_driver.request("GET", "/mw/short")
    assert response.status_code == 202
    assert response.json() == {"short": True}
    assert response.headers["x-short"] == "yes"
    assert "x-trail" not in response.headers  # neither `outer` nor `inner` tagged it
    inner = middleware_driver.request("GET", "/mw/inner-short")
    assert inner.status_code == 203 and inner.text == "inner answered"
    assert _trail(inner) == ["outer"]  # the outer middleware still saw it


def test_a_middleware_may_change_the_status_and_headers(middleware_driver: Driver) -> None:
    response = middleware_driver.request("GET", "/mw/teapot")
    assert response.status_code == 418
    assert response.json() == "short and stout"
    assert response.headers["content-length"] == str(len(response.content))


def test_streamed_bodies_stay_streamed_and_can_be_wrapped(middleware_driver: Driver) -> None:
    plain = middleware_driver.request("GET", "/mw/stream")
    assert plain.status_code == 200
    assert plain.text == "chunk0\nchunk1\nchunk2\n"
    if middleware_driver.name != "testclient":  # it hands over the body it collected
        assert "content-length" not in plain.headers  # still streamed, chunk by chunk
    upper = middleware_driver.request("GET", "/mw/stream-upper")
    assert upper.text == "CHUNK0\nCHUNK1\nCHUNK2\n"
    assert _trail(upper) == ["inner", "outer"]


def test_tasks_start_after_every_middleware_is_done(middleware_driver: Driver) -> None:
    key = new_key()
    response = middleware_driver.request("POST", f"/mw/tasks/{key}")
    assert response.status_code == 200
    assert wait_for_events(middleware_driver, key, 4) == [
        "handler",
        "middleware-after-call-next",
        "task-1",
        "task-2",
    ]


def test_a_slow_task_delays_neither_the_response_nor_the_next_request(
    middleware_driver: Driver,
) -> None:
    if middleware_driver.name == "testclient":
        pytest.skip("the TestClient runs tasks before returning, by design")
    key = new_key()
    started = time.monotonic()
    response = middleware_driver.request("POST", f"/mw/slow-task/{key}")
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1.0, f"the response waited {elapsed:.2f}s for a task"
    started = time.monotonic()
    assert middleware_driver.request("GET", "/hello").status_code == 200
    assert time.monotonic() - started < 1.0
    assert wait_for_events(middleware_driver, key, 2) == [
        "middleware-after-call-next",
        "slow-task",
    ]


def test_a_middleware_that_fails_after_call_next_gives_500_and_takes_the_error_path(
    middleware_driver: Driver,
) -> None:
    """The request failed after all: its run_on="error"/"always" tasks run after the 500,
    its run_on="success" task does not."""
    key = new_key()
    response = middleware_driver.request("POST", f"/mw/boom-after/{key}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    logs = wait_for_log(middleware_driver, "middleware failed after call_next on purpose")
    assert "Exception in middleware tests.conformance.middleware_app.outer" in logs
    assert wait_for_events(middleware_driver, key, 3) == ["handler", "error-task", "always-task"]
    time.sleep(0.2)
    assert wait_for_events(middleware_driver, key, 3) == ["handler", "error-task", "always-task"]


def test_a_middleware_that_fails_before_call_next_gives_500(middleware_driver: Driver) -> None:
    key = new_key()
    response = middleware_driver.request("POST", f"/mw/boom-before/{key}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "middleware failed before call_next on purpose" in wait_for_log(
        middleware_driver, "middleware failed before call_next on purpose"
    )
    assert wait_for_events(middleware_driver, key, 1, timeout=0.3) == []


@pytest.mark.parametrize(
    ("path", "kind", "layer"),
    [
        ("exit-before", "SystemExit", "outer"),  # async middleware calling sys.exit()
        ("interrupt-before", "KeyboardInterrupt", "inner"),  # sync, KeyboardInterrupt
    ],
)
def test_a_middleware_raising_a_base_exception_gives_500_and_the_server_goes_on(
    middleware_driver: Driver, path: str, kind: str, layer: str
) -> None:
    key = new_key()
    response = middleware_driver.request("GET", f"/mw/{path}/{key}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    logs = wait_for_log(middleware_driver, f"middleware {key}")
    assert f"Exception in middleware tests.conformance.middleware_app.{layer}" in logs
    style = "async" if layer == "outer" else "sync"
    assert f"{kind}: {style} middleware {key}" in logs, logs  # the real type, last line
    assert middleware_driver.request("GET", "/hello").status_code == 200


def test_a_handler_crash_reaches_the_middleware_as_a_500(middleware_driver: Driver) -> None:
    key = new_key()
    response = middleware_driver.request("GET", f"/mw/handler-crash/{key}")
    assert response.status_code == 500
    assert _trail(response) == ["inner", "outer"]
    assert wait_for_events(middleware_driver, key, 1, timeout=0.3) == []


def test_cors_preflight_is_answered_by_the_middleware(middleware_driver: Driver) -> None:
    response = middleware_driver.request(
        "OPTIONS",
        "/hello",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "X-Token, Content-Type",
        },
    )
    assert response.status_code == 200, response.text
    assert response.text == "OK"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert "x-token" in response.headers["access-control-allow-headers"].lower()
    assert response.headers["access-control-max-age"] == "600"
    refused = middleware_driver.request(
        "OPTIONS",
        "/hello",
        headers={"origin": "https://evil.example", "access-control-request-method": "DELETE"},
    )
    assert refused.status_code == 400
    assert refused.text == "Disallowed CORS origin, method"


def test_cors_headers_on_simple_requests(middleware_driver: Driver) -> None:
    allowed = middleware_driver.request("GET", "/hello", headers={"origin": ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-expose-headers"] == "x-trail"
    assert "Origin" in allowed.headers["vary"]
    other = middleware_driver.request("GET", "/hello", headers={"origin": "https://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert "Origin" in other.headers["vary"]


def test_gzip_compresses_big_bodies_only(middleware_driver: Driver) -> None:
    gzip_headers = {"accept-encoding": "gzip"}
    big = middleware_driver.request("GET", "/mw/big", headers=gzip_headers)
    assert big.status_code == 200
    assert big.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in big.headers["vary"]
    assert _decoded(big).startswith("VelociPy middleware ")
    small = middleware_driver.request("GET", "/hello", headers=gzip_headers)
    assert "content-encoding" not in small.headers
    assert small.json() == {"message": "hello"}
    streamed = middleware_driver.request("GET", "/mw/big-stream", headers=gzip_headers)
    assert streamed.headers["content-encoding"] == "gzip"
    assert _decoded(streamed) == "VelociPy middleware " * 500


def _decoded(response: object) -> str:
    """The body as text: httpx has decompressed it already, the TestClient has not."""
    content: bytes = response.content  # type: ignore[attr-defined]
    if content[:2] == b"\x1f\x8b":
        content = gzip.decompress(content)
    return content.decode()


def test_trusted_host_refuses_other_hosts(middleware_driver: Driver) -> None:
    response = middleware_driver.request("GET", "/hello", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert response.text == "Invalid host header"
