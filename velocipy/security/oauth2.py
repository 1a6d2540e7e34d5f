"""OAuth2: bearer tokens from the password and authorization-code flows, and the login form.

The schemes only find the token (`Authorization: Bearer ...`); issuing and
checking tokens is the application's (see docs/security.md for a complete
password flow with hashed passwords and JWTs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from velocipy.core import Form, Request
from velocipy.security._base import SecurityBase, _with_description, get_authorization_scheme_param


class OAuth2(SecurityBase):
    """An OAuth2 scheme with the given `flows`; gives the raw `Authorization` header."""

    def __init__(
        self,
        *,
        flows: dict[str, Any] | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _with_description({"type": "oauth2", "flows": flows or {}}, description)
        self._named(scheme_name)
        self.auto_error = auto_error

    async def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        if not authorization:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return authorization

    def _token(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        scheme, token = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "bearer":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return token


def _flow(**urls: Any) -> dict[str, Any]:
    return {key: value for key, value in urls.items() if value is not None}


class OAuth2PasswordBearer(OAuth2):
    """The token of the OAuth2 password flow; `tokenUrl` is where clients get one."""

    def __init__(
        self,
        tokenUrl: str,  # noqa: N803 - FastAPI's (and OpenAPI's) spelling
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
        refreshUrl: str | None = None,  # noqa: N803
    ) -> None:
        password = _flow(tokenUrl=tokenUrl, refreshUrl=refreshUrl, scopes=scopes or {})
        super().__init__(
            flows={"password": password},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )

    async def __call__(self, request: Request) -> str | None:
        return self._token(request)


class OAuth2AuthorizationCodeBearer(OAuth2):
    """The token of the OAuth2 authorization-code flow."""

    def __init__(
        self,
        authorizationUrl: str,  # noqa: N803
        tokenUrl: str,  # noqa: N803
        refreshUrl: str | None = None,  # noqa: N803
        scheme_name: str | None = None,
        scopes: dict[str, str] | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        code = _flow(
            authorizationUrl=authorizationUrl,
            tokenUrl=tokenUrl,
            refreshUrl=refreshUrl,
            scopes=scopes or {},
        )
        super().__init__(
            flows={"authorizationCode": code},
            scheme_name=scheme_name,
            description=description,
            auto_error=auto_error,
        )

    async def __call__(self, request: Request) -> str | None:
        return self._token(request)


class OpenIdConnect(SecurityBase):
    """OpenID Connect discovery at `openIdConnectUrl`; gives the raw `Authorization` header."""

    def __init__(
        self,
        *,
        openIdConnectUrl: str,  # noqa: N803
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _with_description(
            {"type": "openIdConnect", "openIdConnectUrl": openIdConnectUrl}, description
        )
        self._named(scheme_name)
        self.auto_error = auto_error

    async def __call__(self, request: Request) -> str | None:
        authorization = request.headers.get("authorization")
        if not authorization:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return authorization


@dataclass(kw_only=True)
class OAuth2PasswordRequestForm:
    """The login form of the OAuth2 password flow, as a dependency: `Depends()`.

    Form fields `username`, `password`, optional `scope` (space-separated, read
    into `scopes`), `grant_type` ("password" when given), `client_id`,
    `client_secret`.
    """

    grant_type: Annotated[str | None, Form(pattern="^password$")] = None
    username: Annotated[str, Form()]
    # `format: password` tells the docs page to mask the field, as FastAPI's form does.
    password: Annotated[str, Form(json_schema_extra={"format": "password"})]
    scope: Annotated[str, Form()] = ""
    client_id: Annotated[str | None, Form()] = None
    client_secret: Annotated[str | None, Form(json_schema_extra={"format": "password"})] = None
    scopes: list[str] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.scopes = self.scope.split()


@dataclass(kw_only=True)
class OAuth2PasswordRequestFormStrict(OAuth2PasswordRequestForm):
    """`OAuth2PasswordRequestForm` with `grant_type=password` required, as the spec says."""

    # `field()`: a bare annotation would inherit the base class's default (None).
    grant_type: Annotated[str, Form(pattern="^password$")] = field()
