"""A `BaseException` from a handler or a dependency, before the response: a 500, never a stop.

`sys.exit()`, `KeyboardInterrupt` or a `BaseException` subclass of the app's own
raised while a request is being answered is that request's failure, as under
uvicorn: the client gets FastAPI's 500, the log names the route and the real
exception type, `yield` dependencies see the real exception in their cleanup,
the request's tasks do not run, and the server goes on serving. Before, the
built-in server stopped, a gunicorn worker exited (sync) or lost its main loop
(gthread), and the TestClient let the exception out of a request that asked for
no server exceptions.
"""

from __future__ import annotations

import pytest

from tests.conformance.app import BASE_EXCEPTIONS
from tests.conformance.drivers import Driver, wait_for_events, wait_for_log
from tests.conformance.test_contract import new_key

WHERE = ("handler", "handler-async", "dependency", "dependency-async")


@pytest.mark.parametrize("kind", list(BASE_EXCEPTIONS))
@pytest.mark.parametrize("where", WHERE)
def test_a_base_exception_before_the_response_answers_500_and_the_server_goes_on(
    driver: Driver, where: str, kind: str
) -> None:
    key = new_key()
    response = driver.request("POST", f"/base-exception/{where}/{key}", params={"kind": kind})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    # The worker still serves sync and async routes, and runs later tasks.
    assert driver.request("GET", "/hello").status_code == 200
    assert driver.request("GET", "/hello-sync").status_code == 200
    assert driver.request("POST", f"/tasks/{key}", json={"names": ["after"]}).status_code == 200
    # The dependency's cleanup saw the real exception; the request's own task never ran.
    assert wait_for_events(driver, key, 2) == [f"cleanup saw {kind}", "after"]
    # Logged with the route and the real type (the traceback's last line).
    logs = wait_for_log(driver, f"{kind}: {where} {key}")
    assert f"{kind}: {where} {key}" in logs, logs
    assert f"Exception in handler for POST /base-exception/{where}/{{key}}" in logs, logs
