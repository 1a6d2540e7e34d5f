"""Security schemes: OAuth2 with scopes, HTTP Basic and Bearer, an API key in a header."""

from __future__ import annotations

from typing import Annotated

from velocipy import Depends, Security, VelociPy
from velocipy.security import (
    APIKeyHeader,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
    SecurityScopes,
)

app = VelociPy()

oauth2 = OAuth2PasswordBearer(
    tokenUrl="token", scopes={"me": "Read yourself.", "items": "Read items."}
)
basic = HTTPBasic()
bearer = HTTPBearer(description="A token from the admin console")
api_key = APIKeyHeader(name="X-API-Key")


def current_user(security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> str:
    return token


@app.get("/users/me")
def read_me(user: Annotated[str, Security(current_user, scopes=["me"])]) -> dict[str, str]:
    return {"user": user}


@app.get("/users/me/items")
def read_items(
    user: Annotated[str, Security(current_user, scopes=["me", "items"])],
) -> list[str]:
    return []


@app.get("/basic")
def read_basic(credentials: Annotated[HTTPBasicCredentials, Depends(basic)]) -> str:
    return credentials.username


@app.get("/admin", dependencies=[Depends(bearer)])
def admin() -> dict[str, bool]:
    return {"admin": True}


@app.get("/keyed")
def keyed(key: Annotated[str, Depends(api_key)]) -> str:
    return key
