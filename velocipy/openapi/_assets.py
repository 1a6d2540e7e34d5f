"""The Swagger UI and ReDoc files shipped inside the package, read once and kept.

`tools/fetch_docs_assets.py` writes them, with `MANIFEST.json` recording each
package's pinned version and every file's sha256. The sha256 doubles as the
file's ETag: it changes exactly when the file does.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    """One shipped file, ready to send."""

    body: bytes
    content_type: str
    etag: str


@functools.cache
def manifest() -> dict[str, Any]:
    """`MANIFEST.json`: package → version, tarball checksum, licence, file checksums."""
    text = resources.files("velocipy.openapi").joinpath("assets/MANIFEST.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def pinned_version(package: str) -> str:
    """The version of `package` (`swagger-ui-dist`, `redoc`) the package ships."""
    version: str = manifest()[package]["version"]
    return version


@functools.cache
def load_asset(package: str, name: str) -> Asset | None:
    """The shipped file `name` of `package`, or None if we ship no such servable file."""
    digest = manifest().get(package, {}).get("files", {}).get(name)
    content_type = _CONTENT_TYPES.get(name[name.rfind(".") :]) if "." in name else None
    if digest is None or content_type is None:
        return None  # licence files and unknown names are not served
    path = resources.files("velocipy.openapi").joinpath(f"assets/{package}/{name}")
    return Asset(path.read_bytes(), content_type, f'"{digest}"')
