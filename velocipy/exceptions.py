"""The exceptions a FastAPI app imports from `fastapi.exceptions`, under the same names."""

from __future__ import annotations

from velocipy.core import (
    DeclarationError,
    HTTPException,
    RequestValidationError,
    ResponseValidationError,
)

__all__ = [
    "DeclarationError",
    "HTTPException",
    "RequestValidationError",
    "ResponseValidationError",
]
