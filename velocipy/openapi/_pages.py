"""The HTML of the interactive docs pages: Swagger UI, its OAuth2 redirect page, and ReDoc.

Pure string building. The pages load their scripts and styles from `assets_url`
(by default the app's own routes, serving the files shipped in
`velocipy/openapi/assets/`), so they work with no network beyond the app
itself; `cdn` points them at a public CDN instead, at the pinned versions.
Every value put into the HTML is escaped for where it goes: HTML text and
attributes with `html.escape`, JavaScript with JSON whose `</` is broken so it
cannot close the script element.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ._assets import pinned_version


def _js(value: Any) -> str:
    """`value` as a JavaScript literal that is safe inside a <script> element."""
    return json.dumps(value, sort_keys=True).replace("</", "<\\/")


def asset_base(package: str, assets_url: str, cdn: str | None) -> str:
    """Where the page finds `package`'s files: the app's own route, or the CDN at our pin."""
    if cdn is not None:
        return f"{cdn.rstrip('/')}/{package}@{pinned_version(package)}"
    return assets_url.rstrip("/")


def swagger_ui_html(
    *,
    openapi_url: str,
    title: str,
    assets_url: str,
    oauth2_redirect_url: str | None,
    init_oauth: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    cdn: str | None = None,
) -> str:
    """The Swagger UI page for the schema at `openapi_url`."""
    base = html.escape(asset_base("swagger-ui-dist", assets_url, cdn), quote=True)
    options: dict[str, Any] = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        "showCommonExtensions": True,
        # Swagger UI would otherwise send the schema to validator.swagger.io.
        "validatorUrl": None,
    }
    options.update(parameters or {})
    redirect = ""
    if oauth2_redirect_url is not None:
        redirect = (
            f"options.oauth2RedirectUrl = window.location.origin + {_js(oauth2_redirect_url)};\n"
        )
    oauth = f"ui.initOAuth({_js(init_oauth)});\n" if init_oauth else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" href="{base}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script>
const options = {_js(options)};
options.presets = [SwaggerUIBundle.presets.apis];
{redirect}const ui = SwaggerUIBundle(options);
window.ui = ui;
{oauth}</script>
</body>
</html>
"""


def swagger_ui_oauth2_redirect_html(*, assets_url: str, cdn: str | None = None) -> str:
    """The page an OAuth2 provider sends the browser back to; it hands the code to Swagger UI."""
    base = html.escape(asset_base("swagger-ui-dist", assets_url, cdn), quote=True)
    return f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Swagger UI: OAuth2 redirect</title></head>
<body>
<script src="{base}/oauth2-redirect.js"></script>
</body>
</html>
"""


def redoc_html(*, openapi_url: str, title: str, assets_url: str, cdn: str | None = None) -> str:
    """The ReDoc page for the schema at `openapi_url`."""
    base = html.escape(asset_base("redoc", assets_url, cdn), quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body {{ margin: 0; padding: 0; }}</style>
</head>
<body>
<redoc spec-url="{html.escape(openapi_url, quote=True)}"></redoc>
<script src="{base}/redoc.standalone.js"></script>
</body>
</html>
"""
