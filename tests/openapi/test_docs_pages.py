"""The docs pages and their assets, served by the app itself: no network needed."""

from __future__ import annotations

import hashlib

import pytest

from velocipy import VelociPy
from velocipy.openapi import manifest
from velocipy.testing import TestClient


@pytest.fixture
def client() -> TestClient:
    app = VelociPy(title="Pets")

    @app.get("/pets")
    def pets() -> list[str]:
        return ["cat"]

    return TestClient(app)


def test_swagger_ui_page_and_its_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Pets - Swagger UI</title>" in page.text
    assert '"/openapi.json"' in page.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f'"/docs/assets/{name}"' in page.text
        asset = client.get(f"/docs/assets/{name}")
        assert asset.status_code == 200
        digest = manifest()["swagger-ui-dist"]["files"][name]
        assert hashlib.sha256(asset.content).hexdigest() == digest
        assert asset.headers["etag"] == f'"{digest}"'
        again = client.get(f"/docs/assets/{name}", headers={"if-none-match": asset.headers["etag"]})
        assert again.status_code == 304 and again.content == b""


def test_redoc_page_and_its_script(client: TestClient) -> None:
    page = client.get("/redoc")
    assert page.status_code == 200
    assert 'spec-url="/openapi.json"' in page.text
    script = client.get("/redoc/assets/redoc.standalone.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


def test_oauth2_redirect_page(client: TestClient) -> None:
    page = client.get("/docs/oauth2-redirect")
    assert page.status_code == 200
    assert '"/docs/assets/oauth2-redirect.js"' in page.text
    assert client.get("/docs/assets/oauth2-redirect.js").status_code == 200


@pytest.mark.parametrize("name", ["LICENSE", "NOTICE", "nope.js", "..%2F..%2F__init__.py"])
def test_only_shipped_scripts_and_styles_are_served(client: TestClient, name: str) -> None:
    assert client.get(f"/docs/assets/{name}").status_code == 404


def test_each_page_can_be_turned_off() -> None:
    client = TestClient(VelociPy(docs_url=None, redoc_url=None))
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_docs_cdn_loads_the_assets_from_a_cdn_at_the_pinned_versions() -> None:
    client = TestClient(VelociPy(docs_cdn="https://cdn.example.invalid/npm"))
    version = manifest()["swagger-ui-dist"]["version"]
    assert (
        f"https://cdn.example.invalid/npm/swagger-ui-dist@{version}/swagger-ui-bundle.js"
        in client.get("/docs").text
    )


def test_root_path_prefixes_what_the_browser_fetches() -> None:
    client = TestClient(VelociPy(root_path="/api"))
    page = client.get("/docs").text
    assert '"/api/openapi.json"' in page and '"/api/docs/assets/swagger-ui.css"' in page
