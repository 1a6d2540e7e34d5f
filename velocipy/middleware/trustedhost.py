"""`TrustedHostMiddleware`, under the module name Starlette and FastAPI use."""

from velocipy.core.middleware import TrustedHostMiddleware

__all__ = ["TrustedHostMiddleware"]
