"""Task options, hooks, context and counts: the same behaviour on every driver."""

from __future__ import annotations

import uuid

from tests.conformance.drivers import Driver, wait_for_events, wait_for_log


def new_key() -> str:
    return uuid.uuid4().hex[:12]


def test_timeouts_cancel_async_tasks_and_move_past_sync_ones(driver: Driver) -> None:
    key = new_key()
    assert driver.request("POST", f"/timeouts/{key}").status_code == 200
    events = wait_for_events(driver, key, 6, timeout=10)
    assert len(events) == 6, events
    # The hung async task was cancelled (never finished) and the next task ran;
    # the sync task overran, the next task started without waiting for it.
    assert events[:2] == ["hung:started", "hook:hung-task:TaskTimedOut"]
    assert events.index("after-async") < events.index("after-sync")
    assert events.index("after-sync") < events.index("slow-sync:finished")
    assert "hung:finished" not in events
    assert "hook:tests.conformance.app.sleep_sync:TaskTimedOut" in events
    logs = wait_for_log(driver, "sleep_sync for POST /timeouts/{key} timed out")
    assert "Background task hung-task for POST /timeouts/{key} timed out after 0.3s" in logs
    assert "timed out after 0.2s (a sync task cannot be stopped" in logs


def test_tasks_see_the_request_context(driver: Driver) -> None:
    for kind in ("sync", "async"):
        key = new_key()
        assert driver.request("POST", f"/context-{kind}/{key}").status_code == 200
        assert wait_for_events(driver, key, 2) == [
            f"sync-task={kind}-{key}",
            f"async-task={kind}-{key}",
        ]


#: Drivers that run a request's async code on one event loop task, in one context.
ON_ONE_LOOP = {"uvicorn-h11", "uvicorn-httptools", "server", "server-h11"}


def test_context_set_by_a_request_does_not_leak_into_the_next(driver: Driver) -> None:
    # One keep-alive connection (the HTTP drivers' client) serves these in turn; a value a
    # handler or dependency set must die with its request, as each request has its own
    # context under uvicorn and FastAPI.
    for setter in ("context-sync", "context-async", "context-set-in-dependency"):
        key = new_key()
        answer = driver.request("POST", f"/{setter}/{key}")
        assert answer.status_code == 200
        if setter == "context-set-in-dependency" and driver.name in ON_ONE_LOOP:
            # An async dependency and an async handler share the request's context where
            # the request runs on one event loop (as in FastAPI). The sync drivers run
            # each async call on their portal, in a copy (docs/guide.md says so).
            assert answer.json() == f"{key}:dependency-{key}"
        for reader in ("/context-now", "/context-now-sync"):
            assert driver.request("GET", reader).json() == "unset", (setter, reader)


def test_run_on_decides_which_tasks_follow_which_outcome(driver: Driver) -> None:
    expected = {
        "ok": (200, ["success-only", "always"]),
        "http-error": (400, ["error-only", "always"]),
        "crash": (500, ["error-only", "always"]),
    }
    for outcome, (status, ran) in expected.items():
        key = new_key()
        assert driver.request("POST", f"/run-on/{key}/{outcome}").status_code == status
        assert wait_for_events(driver, key, 2) == ran
        driver.request("POST", f"/tasks/{key}", json={"names": ["end"]})
        assert wait_for_events(driver, key, 3) == [*ran, "end"]


def test_error_hooks_get_every_failure(driver: Driver) -> None:
    key = new_key()
    assert driver.request("POST", f"/hooked/{key}").status_code == 200
    assert wait_for_events(driver, key, 3) == ["bad:failed", "hook:bad-task:RuntimeError", "good"]


def test_live_counts(driver: Driver) -> None:
    before = driver.request("GET", "/_tasks").json()
    key = new_key()
    driver.request("POST", f"/hooked/{key}")
    wait_for_events(driver, key, 3)
    after = wait_for_counts(driver, before)
    assert after["failed"] == before["failed"] + 1
    assert after["succeeded"] >= before["succeeded"] + 1
    assert set(after) >= {"pending", "running", "timed_out", "abandoned", "running_names"}


def wait_for_counts(driver: Driver, before: dict[str, int]) -> dict[str, int]:
    import time

    deadline = time.monotonic() + 5
    while True:
        now: dict[str, int] = driver.request("GET", "/_tasks").json()
        if now["failed"] > before["failed"] and now["running"] == 0 or time.monotonic() > deadline:
            return now
        time.sleep(0.02)
