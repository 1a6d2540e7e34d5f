"""Security schemes as dependencies, with FastAPI's names, answers and OpenAPI descriptions.

    oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")

    @app.get("/me")
    def me(token: Annotated[str, Depends(oauth2_scheme)]) -> dict[str, str]: ...

See docs/security.md.
"""

from velocipy.core import Security, SecurityScopes
from velocipy.security._base import SecurityBase, get_authorization_scheme_param
from velocipy.security.api_key import APIKeyBase, APIKeyCookie, APIKeyHeader, APIKeyQuery
from velocipy.security.http import (
    HTTPAuthorizationCredentials,
    HTTPBase,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
)
from velocipy.security.oauth2 import (
    OAuth2,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    OpenIdConnect,
)

__all__ = [
    "APIKeyBase",
    "APIKeyCookie",
    "APIKeyHeader",
    "APIKeyQuery",
    "HTTPAuthorizationCredentials",
    "HTTPBase",
    "HTTPBasic",
    "HTTPBasicCredentials",
    "HTTPBearer",
    "HTTPDigest",
    "OAuth2",
    "OAuth2AuthorizationCodeBearer",
    "OAuth2PasswordBearer",
    "OAuth2PasswordRequestForm",
    "OAuth2PasswordRequestFormStrict",
    "OpenIdConnect",
    "Security",
    "SecurityBase",
    "SecurityScopes",
    "get_authorization_scheme_param",
]
