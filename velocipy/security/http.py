"""HTTP authentication schemes: `HTTPBasic`, `HTTPBearer`, `HTTPDigest` (RFC 7235 and kin)."""

from __future__ import annotations

import binascii
from base64 import b64decode
from dataclasses import dataclass

from velocipy.core import Request
from velocipy.security._base import SecurityBase, _with_description, get_authorization_scheme_param


@dataclass
class HTTPBasicCredentials:
    """What `HTTPBasic` gives: the user name and password of the `Authorization` header."""

    username: str
    password: str


@dataclass
class HTTPAuthorizationCredentials:
    """What `HTTPBearer` and `HTTPDigest` give: the header's scheme and the rest of it."""

    scheme: str
    credentials: str


class HTTPBase(SecurityBase):
    """Any HTTP `Authorization` scheme; gives `HTTPAuthorizationCredentials`."""

    def __init__(
        self,
        *,
        scheme: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _with_description({"type": "http", "scheme": scheme}, description)
        self._named(scheme_name)
        self.auto_error = auto_error

    def make_authenticate_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": str(self.model["scheme"]).title()}

    def _credentials(
        self, request: Request, expected: str | None
    ) -> HTTPAuthorizationCredentials | None:
        authorization = request.headers.get("authorization")
        scheme, credentials = get_authorization_scheme_param(authorization)
        if not (authorization and scheme and credentials) or (
            expected is not None and scheme.lower() != expected
        ):
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        return self._credentials(request, None)


class HTTPBasic(HTTPBase):
    """HTTP Basic authentication (RFC 7617); gives `HTTPBasicCredentials`.

    Compare the password with `secrets.compare_digest`, never `==`.
    """

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        realm: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="basic", scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        self.realm = realm

    def make_authenticate_headers(self) -> dict[str, str]:
        if self.realm:
            return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}
        return {"WWW-Authenticate": "Basic"}

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        authorization = request.headers.get("authorization")
        scheme, param = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "basic":
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        # Credentials that are there but unreadable are an error even without
        # auto_error: the client meant to authenticate and got it wrong.
        try:
            data = b64decode(param, validate=True).decode("ascii")
        except (ValueError, UnicodeDecodeError, binascii.Error) as error:
            raise self.make_not_authenticated_error() from error
        username, separator, password = data.partition(":")
        if not separator:
            raise self.make_not_authenticated_error()
        return HTTPBasicCredentials(username=username, password=password)


class HTTPBearer(HTTPBase):
    """A bearer token in the `Authorization` header (RFC 6750)."""

    def __init__(
        self,
        *,
        bearerFormat: str | None = None,  # noqa: N803 - FastAPI's (and OpenAPI's) spelling
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="bearer", scheme_name=scheme_name, description=description, auto_error=auto_error
        )
        if bearerFormat:
            self.model["bearerFormat"] = bearerFormat

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        return self._credentials(request, "bearer")


class HTTPDigest(HTTPBase):
    """HTTP Digest (RFC 7616): hands over the header's parameters; checking them is yours."""

    def __init__(
        self,
        *,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        super().__init__(
            scheme="digest", scheme_name=scheme_name, description=description, auto_error=auto_error
        )

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        return self._credentials(request, "digest")
