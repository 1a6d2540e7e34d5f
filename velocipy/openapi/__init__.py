"""Interactive API docs: Swagger UI and ReDoc pages, served from assets shipped in the package.

The pages' HTML lives in `_pages`, the shipped files in `assets/` (brought in
from the npm registry by `tools/fetch_docs_assets.py`, pinned by version and
sha256, with their licence files) and are read by `_assets`.
"""

from ._assets import Asset, load_asset, manifest, pinned_version
from ._pages import redoc_html, swagger_ui_html, swagger_ui_oauth2_redirect_html

__all__ = [
    "Asset",
    "load_asset",
    "manifest",
    "pinned_version",
    "redoc_html",
    "swagger_ui_html",
    "swagger_ui_oauth2_redirect_html",
]
