"""`HTTPSRedirectMiddleware`, under the module name Starlette and FastAPI use."""

from velocipy.core.middleware import HTTPSRedirectMiddleware

__all__ = ["HTTPSRedirectMiddleware"]
