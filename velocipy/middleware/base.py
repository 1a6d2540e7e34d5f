"""`BaseHTTPMiddleware`, under the module name Starlette uses (see `velocipy.core.middleware`)."""

from velocipy.core.middleware import BaseHTTPMiddleware

__all__ = ["BaseHTTPMiddleware"]
