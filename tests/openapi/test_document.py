"""The OpenAPI document: the same as FastAPI's for the same declarations, valid, deterministic."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from velocipy import VelociPy
from velocipy.core import DeclarationError
from velocipy.testing import TestClient

pytest.importorskip("pydantic")
validator = pytest.importorskip("openapi_spec_validator")

HERE = Path(__file__).parent
CASES = sorted(p.stem for p in (HERE / "cases").glob("*.py") if p.stem != "__init__")


def case_app(name: str) -> VelociPy:
    module = importlib.import_module(f"tests.openapi.cases.{name}")
    app: VelociPy = module.app
    return app


def fastapi_document(name: str, app: VelociPy) -> dict[str, Any]:
    """FastAPI's recorded answer, with its default title where the case sets none."""
    expected: dict[str, Any] = json.loads((HERE / "fixtures" / f"{name}.json").read_text())
    if expected["info"]["title"] == "FastAPI":
        expected["info"]["title"] = app.title
    return expected


@pytest.mark.parametrize("name", CASES)
def test_the_same_document_as_fastapi(name: str) -> None:
    app = case_app(name)
    assert app.openapi() == fastapi_document(name, app)


@pytest.mark.parametrize("name", CASES)
def test_the_document_is_valid_openapi(name: str) -> None:
    validator.validate(case_app(name).openapi())


@pytest.mark.parametrize("name", CASES)
def test_openapi_json_serves_the_document_and_is_not_in_it(name: str) -> None:
    app = case_app(name)
    with TestClient(app) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == app.openapi()
    assert not {"/openapi.json", "/docs", "/redoc"} & set(response.json()["paths"])


def test_the_document_is_byte_identical_across_processes() -> None:
    script = (
        "import sys, json; sys.path.insert(0, '.');"
        "from tests.openapi.cases.operations import app;"
        "sys.stdout.write(app.openapi_bytes().decode())"
    )
    root = HERE.parent.parent
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=root, env=env, capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stderr.decode()
        outputs.add(result.stdout)
    assert len(outputs) == 1


def test_built_once_and_kept() -> None:
    app = case_app("basic")
    assert app.openapi() is app.openapi()


def test_a_repeated_operation_id_is_an_error_naming_both() -> None:
    app = VelociPy()

    @app.get("/a", operation_id="same")
    def first() -> None: ...

    @app.get("/b", operation_id="same")
    def second() -> None: ...

    with pytest.raises(DeclarationError) as raised:
        app.openapi()
    assert "GET /a" in str(raised.value) and "GET /b" in str(raised.value)
    with pytest.raises(DeclarationError), TestClient(app):
        pass  # and the app does not start


def test_two_models_with_one_name_are_an_error_naming_both() -> None:
    import pydantic

    def make(field: str) -> type[pydantic.BaseModel]:
        return pydantic.create_model("Item", **{field: (int, ...)})

    first, second = make("a"), make("b")
    app = VelociPy()

    @app.post("/a")
    def take_a(item: first) -> None:  # type: ignore[valid-type]
        ...

    @app.post("/b")
    def take_b(item: second) -> None:  # type: ignore[valid-type]
        ...

    with pytest.raises(DeclarationError) as raised:
        app.openapi()
    assert "'Item'" in str(raised.value)


def test_openapi_version_3_0_3_really_converts() -> None:
    app = VelociPy(openapi_version="3.0.3")

    @app.get("/items")
    def items(q: int | None = None) -> dict[str, int]:
        return {}

    document = app.openapi()
    assert document["openapi"] == "3.0.3"
    (parameter,) = document["paths"]["/items"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "integer", "nullable": True, "title": "Q"}
    validator.validate(document)


def test_app_options_reach_the_document() -> None:
    app = VelociPy(
        title="T",
        version="9",
        summary="S",
        description="D",
        terms_of_service="https://example.invalid/tos",
        contact={"name": "Ops"},
        license_info={"name": "MIT", "identifier": "MIT"},
        servers=[{"url": "https://api.example.invalid"}],
        root_path="/api",
    )
    document = app.openapi()
    assert document["info"] == {
        "title": "T",
        "summary": "S",
        "description": "D",
        "termsOfService": "https://example.invalid/tos",
        "contact": {"name": "Ops"},
        "license": {"name": "MIT", "identifier": "MIT"},
        "version": "9",
    }
    assert document["servers"] == [{"url": "/api"}, {"url": "https://api.example.invalid"}]


def test_openapi_url_none_turns_everything_off() -> None:
    app = VelociPy(openapi_url=None)
    client = TestClient(app)
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path


def test_without_pydantic_the_built_in_types_are_described_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import velocipy.openapi._fields as fields

    app = case_app("parameters")  # built-in types only
    with_pydantic = app.openapi()
    monkeypatch.setattr(fields, "pydantic_available", lambda: False)
    app.openapi_schema = None
    assert app.openapi() == with_pydantic == fastapi_document("parameters", app)


def test_a_type_with_no_schema_is_an_error_naming_the_route() -> None:
    app = VelociPy()

    @app.get("/factory")
    def factory() -> Callable[[], int]:
        return int

    with pytest.raises(DeclarationError) as raised:
        app.openapi()
    assert "GET /factory" in str(raised.value) and "response model" in str(raised.value)
    assert "include_in_schema=False" in str(raised.value)


ROOT = HERE.parents[1]
#: Examples FastAPI cannot run (a VelociPy-only API), as the recorder found them.
NOT_IN_FASTAPI = json.loads((HERE / "fixtures" / "docs" / "not-in-fastapi.json").read_text())
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if "VelociPy(" in p.read_text())


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_examples_document_as_their_fastapi_twins(name: str) -> None:
    app: VelociPy = importlib.import_module(f"examples.{name}").app
    if f"examples/{name}.py:app" in NOT_IN_FASTAPI:
        assert not (HERE / "fixtures" / f"{name}.json").exists()
        validator.validate(app.openapi())
        return
    assert app.openapi() == fastapi_document(name, app)
