"""`GZipMiddleware`, under the module name Starlette and FastAPI use."""

from velocipy.core.middleware import GZipMiddleware

__all__ = ["GZipMiddleware"]
