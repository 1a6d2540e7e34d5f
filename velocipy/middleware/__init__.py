"""Middleware for VelociPy apps: `app.add_middleware(CORSMiddleware, allow_origins=[...])`.

The built-in ones run on every driver; see docs/middleware.md. Each also has
a module named as in Starlette and FastAPI (`velocipy.middleware.cors`, ...).
"""

from velocipy.core.middleware import (
    BaseHTTPMiddleware,
    CORSMiddleware,
    GZipMiddleware,
    HTTPSRedirectMiddleware,
    Transform,
    TrustedHostMiddleware,
)

__all__ = [
    "BaseHTTPMiddleware",
    "CORSMiddleware",
    "GZipMiddleware",
    "HTTPSRedirectMiddleware",
    "Transform",
    "TrustedHostMiddleware",
]
