"""What every security scheme shares: its OpenAPI description and its 401.

A scheme is an object used as a dependency (`Depends(scheme)` or
`Security(scheme)`): called with the request, it returns the credentials it
found, or raises the 401 FastAPI sends (`WWW-Authenticate` naming the scheme),
or returns None when `auto_error=False`. `model` is the scheme's OpenAPI
Security Scheme Object as a plain dict, and `scheme_name` its key under
`components.securitySchemes`; the OpenAPI document reads both from the route
plans.
"""

from __future__ import annotations

from typing import Any

from velocipy.core import HTTPException


class SecurityBase:
    """Base class of the security schemes."""

    #: The OpenAPI Security Scheme Object (`{"type": "http", "scheme": "bearer"}`, ...).
    model: dict[str, Any]
    #: The scheme's name in the OpenAPI document (the class name unless given).
    scheme_name: str
    #: Raise the 401 when the credentials are missing; otherwise the dependency gives None.
    auto_error: bool = True

    def _named(self, scheme_name: str | None) -> None:
        self.scheme_name = scheme_name or type(self).__name__

    def make_authenticate_headers(self) -> dict[str, str]:
        """The `WWW-Authenticate` challenge sent with the 401."""
        return {"WWW-Authenticate": "Bearer"}

    def make_not_authenticated_error(self) -> HTTPException:
        """The error raised for missing or unusable credentials (override it to change it)."""
        return HTTPException(401, "Not authenticated", headers=self.make_authenticate_headers())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.scheme_name!r}>"


def _with_description(model: dict[str, Any], description: str | None) -> dict[str, Any]:
    if description:
        model["description"] = description
    return model


def get_authorization_scheme_param(value: str | None) -> tuple[str, str]:
    """Split an `Authorization` header into its scheme and the rest: `("Bearer", "abc")`."""
    if not value:
        return "", ""
    scheme, _, param = value.partition(" ")
    return scheme, param.strip()
