"""The shipped Swagger UI and ReDoc files match their pins, and the pages need no network."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from velocipy.openapi import (
    load_asset,
    manifest,
    redoc_html,
    swagger_ui_html,
    swagger_ui_oauth2_redirect_html,
)

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "velocipy" / "openapi" / "assets"


def _fetch_script() -> object:
    spec = importlib.util.spec_from_file_location(
        "fetch_docs_assets", ROOT / "tools" / "fetch_docs_assets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_shipped_file_has_the_checksum_the_manifest_records() -> None:
    recorded = manifest()
    assert set(recorded) == {"swagger-ui-dist", "redoc"}
    for package, entry in recorded.items():
        shipped = {p.name for p in (ASSETS / package).iterdir()}
        assert shipped == set(entry["files"]), f"{package}: files not in the manifest"
        for name, digest in entry["files"].items():
            data = (ASSETS / package / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{package}/{name} changed"


def test_the_manifest_matches_the_pins_of_the_fetch_script() -> None:
    script = _fetch_script()
    for package in script.PACKAGES:  # type: ignore[attr-defined]
        entry = manifest()[package.name]
        assert entry["version"] == package.version
        assert entry["tarball_sha256"] == package.tarball_sha256
        assert set(entry["files"]) == set(package.files.values())
    assert script.check() == 0  # type: ignore[attr-defined]


def test_licence_files_ship_with_the_code() -> None:
    for package in ("swagger-ui-dist", "redoc"):
        licence = (ASSETS / package / "LICENSE").read_text()
        assert "Permission" in licence or "Apache License" in licence
    assert "Apache License" in (ASSETS / "swagger-ui-dist" / "LICENSE").read_text()


def _urls(page: str) -> list[str]:
    return re.findall(r'(?:src|href|spec-url)="([^"]*)"', page)


PAGES = {
    "swagger": swagger_ui_html(
        openapi_url="/openapi.json",
        title="API",
        assets_url="/docs/assets",
        oauth2_redirect_url="/docs/oauth2-redirect",
    ),
    "redirect": swagger_ui_oauth2_redirect_html(assets_url="/docs/assets"),
    "redoc": redoc_html(openapi_url="/openapi.json", title="API", assets_url="/redoc/assets"),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_pages_reference_no_external_url(name: str) -> None:
    page = PAGES[name]
    urls = _urls(page)
    assert urls, "the page loads nothing?"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
    assert "http://" not in page and "https://" not in page


def test_the_cdn_option_points_at_the_pinned_versions() -> None:
    page = swagger_ui_html(
        openapi_url="/openapi.json",
        title="API",
        assets_url="/docs/assets",
        oauth2_redirect_url=None,
        cdn="https://cdn.example/npm/",
    )
    version = manifest()["swagger-ui-dist"]["version"]
    assert f'src="https://cdn.example/npm/swagger-ui-dist@{version}/swagger-ui-bundle.js"' in page


def test_values_cannot_break_out_of_the_page() -> None:
    page = swagger_ui_html(
        openapi_url="/x</script><script>alert(1)</script>",
        title="<b>T</b>",
        assets_url="/docs/assets",
        oauth2_redirect_url=None,
    )
    assert "</script><script>alert" not in page
    assert "<b>T</b>" not in page and "&lt;b&gt;T&lt;/b&gt;" in page


def test_assets_load_with_content_type_and_etag() -> None:
    bundle = load_asset("swagger-ui-dist", "swagger-ui-bundle.js")
    assert bundle is not None
    assert bundle.content_type.startswith("text/javascript")
    digest = manifest()["swagger-ui-dist"]["files"]["swagger-ui-bundle.js"]
    assert bundle.etag == f'"{digest}"'
    assert hashlib.sha256(bundle.body).hexdigest() == digest
    assert load_asset("swagger-ui-dist", "LICENSE") is None  # licences are shipped, not served
    assert load_asset("swagger-ui-dist", "../../__init__.py") is None
    assert load_asset("nope", "x.js") is None
