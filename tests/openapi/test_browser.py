"""A real browser opens /docs and /redoc from `velocipy run`, with no network but the app.

Swagger UI must list the operations, and "Try it out" → "Execute" must show
the server's real answer; ReDoc must render the operation list. Screenshots
go to the test's tmp dir. Needs Debian's `chromium` and the `playwright`
package (its driver only: the browser is the system's). `.ci/run` installs
chromium; where either is missing the test is skipped, saying why.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import PYTHON, ServerProcess, free_port, run_server

pytestmark = [pytest.mark.server, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium on PATH (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    port = free_port()
    argv = [PYTHON, "-m", "velocipy", "run", "tests.openapi.browser_app:app", "--port", str(port)]
    with run_server(argv, port=port) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Any, server: ServerProcess) -> Any:
    """A page whose every request outside the app fails: the docs must need nothing else."""
    page = browser.new_page()
    outside: list[str] = []

    def refuse(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", refuse)
    page.outside_requests = outside
    page.set_default_timeout(60_000)  # generous: CI machines can be busy
    return page


def test_swagger_ui_lists_and_executes_an_operation(
    browser: Any, server: ServerProcess, tmp_path: Path
) -> None:
    page = open_page(browser, server)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/greet/{name}" in text.replace("\u200b", "") for text in paths), paths
    assert any("/health" in text for text in paths), paths

    operation = page.locator("#operations-greetings-greet_greet__name__get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("input[placeholder='name']").fill("Ada")
    operation.locator("button.execute").click()
    answer = operation.locator(".live-responses-table tr.response")
    answer.locator(".response-col_description pre").first.wait_for()
    assert "Hello, Ada!" in answer.locator(".response-col_description pre").first.inner_text()
    assert answer.locator(".response-col_status").inner_text().strip() == "200"
    page.screenshot(path=str(tmp_path / "swagger-ui.png"), full_page=True)
    assert page.outside_requests == []


def test_redoc_renders_the_operation_list(
    browser: Any, server: ServerProcess, tmp_path: Path
) -> None:
    page = open_page(browser, server)
    page.goto(f"{server.url}/redoc")
    page.wait_for_selector("text=Greet someone by name.")
    menu = page.locator("[role=menuitem]").all_inner_texts()
    assert any("Greet" in item for item in menu), menu
    assert any("Health" in item for item in menu), menu
    page.screenshot(path=str(tmp_path / "redoc.png"), full_page=True)
    assert page.outside_requests == []
