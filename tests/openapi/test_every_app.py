"""Every app in docs/ and examples/ has a valid OpenAPI document (openapi-spec-validator)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from tests.test_docs import DOCS, blocks
from velocipy import VelociPy
from velocipy.core import DeclarationError

validator = pytest.importorskip("openapi_spec_validator")
pytest.importorskip("pydantic")

ROOT = Path(__file__).resolve().parents[2]
#: Apps a page declares to show that their document is refused, with what it says.
REFUSED = {("openapi.md", "twice"): "operationId 'get_thing'"}


def page_apps(page: str) -> dict[str, VelociPy]:
    module = types.ModuleType(f"openapi_check_{page.replace('-', '_').removesuffix('.md')}")
    sys.modules[module.__name__] = module
    try:
        for index, source in enumerate(blocks(page)):
            exec(compile(source, f"{page} (block {index + 1})", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    return {name: value for name, value in vars(module).items() if isinstance(value, VelociPy)}


PAGES = sorted(p.name for p in DOCS.glob("*.md") if blocks(p.name))


@pytest.mark.parametrize("page", PAGES)
def test_every_app_of_a_docs_page_has_a_valid_document(page: str) -> None:
    apps = page_apps(page)
    for name, app in apps.items():
        refused = REFUSED.get((page, name))
        if refused is not None:
            with pytest.raises(DeclarationError, match=refused):
                app.openapi()
            continue
        validator.validate(app.openapi())


def example_apps() -> list[Any]:
    found = []
    for info in pkgutil.iter_modules([str(ROOT / "examples")]):
        module = importlib.import_module(f"examples.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, VelociPy):
                found.append(pytest.param(value, id=f"examples.{info.name}:{name}"))
    return found


@pytest.mark.parametrize("app", example_apps())
def test_every_example_app_has_a_valid_document(app: VelociPy) -> None:
    validator.validate(app.openapi())


DOCS_FIXTURES = ROOT / "tests" / "openapi" / "fixtures" / "docs"
#: Docs apps FastAPI cannot run (a VelociPy-only API), each with the reason the recorder met.
NOT_IN_FASTAPI: dict[str, str] = json.loads((DOCS_FIXTURES / "not-in-fastapi.json").read_text())
#: Operations of a docs app that show a deliberate difference (docs/guide.md lists each),
#: with the query parameter our document has where FastAPI's has a request body.
DELIBERATE = {
    ("guide.md:app", "/items/{item_id}", "get"): "tags",  # unmarked list[str]: query, not body
}


def _without_deliberate(key: str, document: dict[str, Any]) -> dict[str, Any]:
    document = json.loads(json.dumps(document))
    for (app_key, path, method), _ in DELIBERATE.items():
        if app_key == key:
            del document["paths"][path][method]
    return document


@pytest.mark.parametrize("page", PAGES)
def test_every_docs_app_fastapi_also_runs_has_fastapis_document(page: str) -> None:
    """Recorded by tools/record_fastapi_openapi.py from each page's FastAPI twin."""
    for name, app in page_apps(page).items():
        key = f"{page}:{name}"
        fixture = DOCS_FIXTURES / f"{page.removesuffix('.md')}.{name}.json"
        if key in NOT_IN_FASTAPI:
            assert not fixture.exists(), f"{key} is both recorded and listed as VelociPy-only"
            continue
        assert fixture.exists(), (
            f"{key} has no recorded FastAPI document: run tools/record_fastapi_openapi.py"
        )
        expected = json.loads(fixture.read_text())
        if expected["info"]["title"] == "FastAPI":
            expected["info"]["title"] = app.title
        ours = app.openapi()
        assert _without_deliberate(key, ours) == _without_deliberate(key, expected), key
        for (app_key, path, method), query in DELIBERATE.items():
            if app_key == key:
                assert "requestBody" in expected["paths"][path][method]
                operation = ours["paths"][path][method]
                assert "requestBody" not in operation
                assert {"name": query, "in": "query"}.items() <= operation["parameters"][-1].items()


def test_the_list_of_docs_apps_fastapi_cannot_run_names_only_real_apps() -> None:
    apps = {f"{page}:{name}" for page in PAGES for name in page_apps(page)}
    assert {key for key in NOT_IN_FASTAPI if not key.startswith("examples/")} <= apps
    recorded = {
        f"{p.stem.split('.')[0]}.md:{p.stem.split('.')[1]}" for p in DOCS_FIXTURES.glob("*.*.json")
    }
    assert recorded <= apps, "a recorded docs app no longer exists: re-record"


#: The test suite's own apps that servers import (each a module-level `app`).
TEST_APPS = [
    "tests.conformance.app",
    "tests.conformance.middleware_app",
    "tests.openapi.browser_app",
    "tests.adapters.upload_app",
    "tests.reliability.app",
    "tests.asgi_spec.velocipy_app",
]


@pytest.mark.parametrize("module", TEST_APPS)
def test_every_test_app_has_a_valid_document(module: str) -> None:
    app = importlib.import_module(module).app
    assert isinstance(app, VelociPy)
    validator.validate(app.openapi())
