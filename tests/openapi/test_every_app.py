"""Every app in docs/ and examples/ has a valid OpenAPI document (openapi-spec-validator)."""

from __future__ import annotations

import importlib
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
