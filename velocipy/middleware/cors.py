"""`CORSMiddleware`, under the module name Starlette and FastAPI use."""

from velocipy.core.middleware import CORSMiddleware

__all__ = ["CORSMiddleware"]
