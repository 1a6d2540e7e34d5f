"""The public contract, written once and run against every driver (see conftest.py).

In-process (TestClient) and on real servers alike: responses come before tasks;
tasks run in order; a failing task is logged and the rest run; a handler that
raises runs no tasks; routing, validation and body errors answer as documented.
"""

from __future__ import annotations

import pathlib
import time
import uuid

import pytest

from tests.conformance.drivers import Driver, wait_for_events, wait_for_log


def new_key() -> str:
    return uuid.uuid4().hex[:12]


def test_hello(driver: Driver) -> None:
    for path in ("/hello", "/hello-sync"):
        response = driver.request("GET", path)
        assert response.status_code == 200
        assert response.json() == {"message": "hello"}
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))


def test_head_has_no_body_but_the_length(driver: Driver) -> None:
    response = driver.request("HEAD", "/hello")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(b'{"message":"hello"}'))


def test_tasks_run_after_the_response_in_the_order_added(driver: Driver) -> None:
    key = new_key()
    names = ["a", "b", "c", "d", "e"]
    response = driver.request("POST", f"/tasks/{key}", json={"names": names, "kind": "mixed"})
    assert response.status_code == 200 and response.json() == {"scheduled": 5}
    assert wait_for_events(driver, key, 5) == names


def test_a_slow_task_does_not_delay_the_response(driver: Driver) -> None:
    if driver.name == "testclient":
        pytest.skip("the TestClient runs tasks before returning, by design")
    key = new_key()
    started = time.monotonic()
    response = driver.request(
        "POST", f"/tasks/{key}", json={"names": ["slow", "next"], "sleep": 1.5, "kind": "async"}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 1.0, f"the response waited {elapsed:.2f}s for a task"
    assert wait_for_events(driver, key, 2) == ["slow", "next"]


def test_no_task_starts_before_its_response_has_reached_the_client(
    driver: Driver, tmp_path: pathlib.Path
) -> None:
    if driver.name == "testclient":
        pytest.skip("the TestClient runs tasks before returning, by design")
    key = new_key()
    marker = tmp_path / "the client has its response"
    response = driver.request("POST", f"/after-the-response/{key}", params={"marker": str(marker)})
    assert response.status_code == 200 and response.json() == "sent"
    marker.touch()
    assert wait_for_events(driver, key, 1) == ["after the response"]


def test_a_failing_task_is_logged_and_the_rest_still_run(driver: Driver) -> None:
    key = new_key()
    plan = {"names": ["one", "two", "three"], "fail": ["two"], "kind": "sync"}
    response = driver.request("POST", f"/tasks/{key}", json=plan)
    assert response.status_code == 200
    assert wait_for_events(driver, key, 3) == ["one", "two:failed", "three"]
    logs = wait_for_log(driver, "task two failed on purpose")
    assert "Background task tests.conformance.app.record for POST /tasks/{key} failed" in logs
    assert "task two failed on purpose" in logs  # the traceback's last line


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_task_raising_systemexit_or_keyboardinterrupt_fails_alone(
    driver: Driver, kind: str
) -> None:
    # A task's own BaseException is a failure like any other (issue 17): logged with its
    # real type, the rest of the request's tasks run, and the server goes on serving.
    function = "record" if kind == "sync" else "record_async"
    for raises in ("SystemExit", "KeyboardInterrupt"):
        key = new_key()
        plan = {"names": ["one", "two", "three"], "fail": ["two"], "kind": kind, "raises": raises}
        response = driver.request("POST", f"/tasks/{key}", json=plan)
        assert response.status_code == 200
        assert wait_for_events(driver, key, 3) == ["one", "two:failed", "three"]
        line = f"tests.conformance.app.{function} for POST /tasks/{{key}} failed ({raises}"
        assert line in wait_for_log(driver, line)
    assert driver.request("GET", "/hello").status_code == 200
    assert driver.request("GET", "/hello-sync").status_code == 200


def test_a_crashing_handler_answers_500_and_runs_no_task(driver: Driver) -> None:
    key = new_key()
    response = driver.request("POST", f"/tasks-then-crash/{key}")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "handler crashed" not in response.text
    driver.request("POST", f"/tasks/{key}", json={"names": ["after"]})
    assert wait_for_events(driver, key, 1) == ["after"]
    assert "handler crashed on purpose" in wait_for_log(driver, "handler crashed on purpose")


def test_an_http_exception_keeps_its_status_and_runs_no_task(driver: Driver) -> None:
    key = new_key()
    response = driver.request("POST", f"/tasks-then-http-error/{key}")
    assert response.status_code == 409
    assert response.json() == {"detail": "conflict on purpose"}
    driver.request("POST", f"/tasks/{key}", json={"names": ["after"]})
    assert wait_for_events(driver, key, 1) == ["after"]


def test_unknown_path_is_404_and_wrong_method_405(driver: Driver) -> None:
    missing = driver.request("GET", "/no/such/path")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong = driver.request("DELETE", "/hello")
    assert wrong.status_code == 405
    assert wrong.json() == {"detail": "Method Not Allowed"}
    assert wrong.headers["allow"] == "GET, HEAD"


def test_path_query_and_dependency_parameters(driver: Driver) -> None:
    response = driver.request("GET", "/items/42", params={"q": "pens", "size": "3"})
    assert response.json() == {"item_id": 42, "q": "pens", "limit": 3}
    assert driver.request("GET", "/items/7").json() == {"item_id": 7, "q": None, "limit": 10}
    bad = driver.request("GET", "/items/seven")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_validation_errors_are_422_in_fastapi_shape(driver: Driver) -> None:
    response = driver.request("POST", "/signup", json={"email": 5})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {(tuple(d["loc"]), d["type"]) for d in detail} == {
        (("body", "email"), "string_type"),
        (("body", "age"), "missing"),
    }
    assert all(isinstance(d["msg"], str) and d["msg"] for d in detail)


def test_a_valid_body_is_converted(driver: Driver) -> None:
    response = driver.request("POST", "/signup", json={"email": "a@b.c", "age": "31"})
    assert response.json() == {"email": "a@b.c", "age": 31}


def test_malformed_json_is_fastapis_422_json_invalid(driver: Driver) -> None:
    response = driver.request(
        "POST", "/echo", content=b'{"a": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "json_invalid",
                "loc": ["body", 6],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting value"},
            }
        ]
    }


def test_constrained_query_parameters_answer_fastapis_422(driver: Driver) -> None:
    ok = driver.request("GET", "/search", params={"q": "pens", "limit": "50"})
    assert ok.status_code == 200 and ok.json() == {"q": "pens", "limit": 50}
    response = driver.request("GET", "/search", params={"q": "Pens", "limit": "0"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "string_pattern_mismatch",
                "loc": ["query", "q"],
                "msg": "String should match pattern '^[a-z]+$'",
                "input": "Pens",
                "ctx": {"pattern": "^[a-z]+$"},
            },
            {
                "type": "greater_than_equal",
                "loc": ["query", "limit"],
                "msg": "Input should be greater than or equal to 1",
                "input": "0",
                "ctx": {"ge": 1},
            },
        ]
    }


def test_deeply_nested_json_is_rejected_cleanly(driver: Driver) -> None:
    body = b"[" * 50_000 + b"]" * 50_000
    response = driver.request("POST", "/echo", content=body)
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["detail"]
    assert driver.request("GET", "/hello").status_code == 200


def test_streaming_responses(driver: Driver) -> None:
    for path in ("/stream", "/stream-async"):
        response = driver.request("GET", path)
        assert response.status_code == 200
        assert response.text == "chunk0\nchunk1\nchunk2\n"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
