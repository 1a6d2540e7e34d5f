"""The schema and docs routes: `/openapi.json`, `/docs` (+ its OAuth2 redirect), `/redoc`.

They are ordinary routes, declared when the app is made and left out of the
schema. The schema is built on the first request for it (or the first call
of `app.openapi()`) and kept, encoded once; the pages are rendered once; the
Swagger UI and ReDoc files are read from the package once and served with
their sha256 as ETag, so a browser asks again only with `If-None-Match` and
gets a 304.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from velocipy.core import Header, HTMLResponse, Request, Response

from ._assets import load_asset, manifest
from ._pages import redoc_html, swagger_ui_html, swagger_ui_oauth2_redirect_html

if TYPE_CHECKING:
    from velocipy.app import VelociPy

#: An hour between checks; a check is cheap: the ETag (the file's sha256) answers 304.
_CACHE_CONTROL = "public, max-age=3600"


@dataclass(frozen=True)
class DocsOptions:
    """Where the schema and the docs pages are served (None turns one off)."""

    openapi_url: str | None = "/openapi.json"
    docs_url: str | None = "/docs"
    redoc_url: str | None = "/redoc"
    swagger_ui_oauth2_redirect_url: str | None = "/docs/oauth2-redirect"
    swagger_ui_init_oauth: dict[str, Any] | None = None
    swagger_ui_parameters: dict[str, Any] | None = None
    #: A CDN base URL (e.g. "https://cdn.jsdelivr.net/npm") to load the docs assets from.
    docs_cdn: str | None = None
    title: str = "VelociPy"
    #: Prefix of every URL the pages put in the browser (a proxy's mount point).
    root_path: str = ""
    #: List a request's `root_path` first in the schema's `servers` (FastAPI's option).
    root_path_in_servers: bool = True


def install_docs_routes(app: VelociPy, options: DocsOptions) -> None:
    """Declare the schema and docs routes of `options` on `app`.

    A request's `root_path` (the app mounted under a prefix with `app.mount`, or
    a server's `--root-path`) decides the prefix of the URLs the pages load and,
    as FastAPI does, is listed first in the schema's `servers`; without one, the
    app's own `root_path` applies. Each variant is rendered once and kept.
    """
    openapi_url = options.openapi_url
    if openapi_url is None:
        return  # no schema, hence no pages that would show it
    fixed_root = options.root_path.rstrip("/")
    schemas: dict[str, tuple[dict[str, Any], bytes]] = {}

    def openapi_json(request: Request) -> Response:
        root = request.head.root_path.rstrip("/")
        if not root or root == fixed_root or not options.root_path_in_servers:
            return Response(app.openapi_bytes(), media_type="application/json")
        document = app.openapi()
        kept = schemas.get(root)
        if kept is None or kept[0] is not document:
            servers = list(document.get("servers") or ())
            if root not in [server.get("url") for server in servers]:
                servers.insert(0, {"url": root})
            kept = schemas[root] = (document, json.dumps({**document, "servers": servers}).encode())
        return Response(kept[1], media_type="application/json")

    app.add_api_route(
        openapi_url, openapi_json, methods=["GET"], include_in_schema=False, name="openapi"
    )

    def root_of(request: Request) -> str:
        return request.head.root_path.rstrip("/") or fixed_root

    if options.docs_url is not None:
        assets_url = f"{options.docs_url.rstrip('/')}/assets"
        redirect = options.swagger_ui_oauth2_redirect_url

        @functools.cache
        def swagger_page(root: str) -> bytes:
            return swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{options.title} - Swagger UI",
                assets_url=root + assets_url,
                oauth2_redirect_url=root + redirect if redirect else None,
                init_oauth=options.swagger_ui_init_oauth,
                parameters=options.swagger_ui_parameters,
                cdn=options.docs_cdn,
            ).encode()

        def swagger_ui(request: Request) -> HTMLResponse:
            return HTMLResponse(swagger_page(root_of(request)))

        app.add_api_route(
            options.docs_url, swagger_ui, methods=["GET"], include_in_schema=False, name="docs"
        )
        _add_assets(app, "swagger-ui-dist", assets_url, "docs_asset")
        if redirect:

            @functools.cache
            def redirect_page(root: str) -> bytes:
                return swagger_ui_oauth2_redirect_html(
                    assets_url=root + assets_url, cdn=options.docs_cdn
                ).encode()

            def swagger_ui_redirect(request: Request) -> HTMLResponse:
                return HTMLResponse(redirect_page(root_of(request)))

            app.add_api_route(
                redirect,
                swagger_ui_redirect,
                methods=["GET"],
                include_in_schema=False,
                name="docs_oauth2_redirect",
            )

    if options.redoc_url is not None:
        redoc_assets = f"{options.redoc_url.rstrip('/')}/assets"

        @functools.cache
        def redoc_page(root: str) -> bytes:
            return redoc_html(
                openapi_url=root + openapi_url,
                title=f"{options.title} - ReDoc",
                assets_url=root + redoc_assets,
                cdn=options.docs_cdn,
            ).encode()

        # ReDoc's sidebar shows a logo it always fetches from its makers' CDN; with the
        # assets served locally the page must reach nothing else, so images stay local.
        headers = {} if options.docs_cdn else {"content-security-policy": "img-src 'self' data:"}

        def redoc(request: Request) -> HTMLResponse:
            return HTMLResponse(redoc_page(root_of(request)), headers=headers)

        app.add_api_route(
            options.redoc_url, redoc, methods=["GET"], include_in_schema=False, name="redoc"
        )
        _add_assets(app, "redoc", redoc_assets, "redoc_asset")


def _add_assets(app: VelociPy, package: str, url: str, name: str) -> None:
    """`GET {url}/{file}` for each shipped script and style of `package`, with ETag and 304.

    One literal route per file, not one `{file}` template: literal paths cost one
    dictionary lookup, while templates are tried in turn by every request that no
    literal path takes, and these would come first, being declared with the app.
    """
    for file in manifest()[package]["files"]:
        if load_asset(package, file) is not None:  # scripts and styles, not licences
            app.add_api_route(
                f"{url}/{file}",
                _asset_endpoint(package, file),
                methods=["GET"],
                include_in_schema=False,
                name=f"{name}_{file}",
            )


def _asset_endpoint(package: str, file: str) -> Callable[..., Response]:
    def asset(if_none_match: Annotated[str | None, Header()] = None) -> Response:
        found = load_asset(package, file)
        assert found is not None  # checked when the route was declared
        headers = {"etag": found.etag, "cache-control": _CACHE_CONTROL}
        if if_none_match is not None and found.etag in if_none_match:
            return Response(None, 304, headers)
        return Response(found.body, 200, headers, media_type=found.content_type)

    return asset
