"""Every example on the background-tasks seed page, through TestClient, exactly as written.

`examples/background_tasks.py` holds the page's app; the last test is the
page's own test, copied as the page shows it.
"""

from __future__ import annotations

import logging
from unittest.mock import MagicMock

import pytest

from examples.background_tasks import app as example_app
from velocipy import BackgroundTasks, VelociPy
from velocipy.testing import TestClient


@pytest.fixture
def client() -> TestClient:
    return TestClient(example_app)


def test_signup_responds_then_sends_the_email(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.post("/signup", json={"email": "ada@example.com"})
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "email": "ada@example.com"}
    assert capsys.readouterr().out == "Sent welcome email to ada@example.com\n"


def test_signup_without_email_uses_the_default(client: TestClient) -> None:
    assert client.post("/signup", json={}).json()["email"] == "user@example.com"


def test_newsletter_tasks_run_in_the_order_added(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.post("/newsletter", json={"email": "bo@example.com"})
    assert response.json() == {"status": "subscribed"}
    assert capsys.readouterr().out.splitlines() == [
        "Logged signup for bo@example.com",
        "Sent welcome email to bo@example.com",
    ]


def test_newsletter_without_email_is_a_server_error_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    response = TestClient(example_app, raise_server_exceptions=False).post("/newsletter", json={})
    assert response.status_code == 500
    assert capsys.readouterr().out == ""


def test_report_forwards_args_and_kwargs(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert client.post("/report").json() == {"status": "reported"}
    assert capsys.readouterr().out == "[high] Admin notified: user_report\n"


def test_fire_and_forget_failure_is_logged_and_the_response_unchanged(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="velocipy"):
        response = client.post("/fire-and-forget")
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    [record] = caplog.records
    assert "examples.background_tasks.flaky_task" in record.getMessage()
    assert "POST /fire-and-forget" in record.getMessage()
    assert "Something went wrong in the underbrush" in caplog.text


def test_checkout_uses_the_dependency_in_a_task(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert client.post("/checkout").json() == {"status": "confirmed"}
    assert capsys.readouterr().out == "Tracked: checkout_complete\n"


def test_tasks_can_be_captured_without_running(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = client.post("/newsletter", json={"email": "cy@example.com"}, run_tasks=False)
    assert [task.name for task in response.tasks] == [
        "examples.background_tasks.log_event",
        "examples.background_tasks.send_welcome_email",
    ]
    assert response.tasks[1].args == ("cy@example.com",)
    assert capsys.readouterr().out == ""
    response.run_tasks()
    assert capsys.readouterr().out.count("cy@example.com") == 2
    with pytest.raises(RuntimeError, match="no captured tasks"):
        response.run_tasks()


# The seed page's own test, as written there.
app = VelociPy()


def test_signup_schedules_email():
    mock_send = MagicMock()
    app.dependency_overrides = {}

    @app.post("/signup-test")
    async def signup_test(background_tasks: BackgroundTasks):
        background_tasks.add_task(mock_send, "[email protected]")
        return {"status": "ok"}

    client = TestClient(app)
    response = client.post("/signup-test")
    assert response.status_code == 200
    mock_send.assert_called_once_with("[email protected]")
