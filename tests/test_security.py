"""`velocipy.security`: each scheme's credentials, its 401 (as FastAPI >= 0.122 sends it),
`auto_error=False`, scopes through `Security()`, the login form, and the recorded schemes."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import pytest

from velocipy import Depends, VelociPy
from velocipy.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    HTTPDigest,
    OAuth2AuthorizationCodeBearer,
    OAuth2PasswordBearer,
    OAuth2PasswordRequestForm,
    OAuth2PasswordRequestFormStrict,
    Security,
    SecurityScopes,
)
from velocipy.testing import TestClient

NOT_AUTHENTICATED = {"detail": "Not authenticated"}


def client_for(scheme: Any) -> TestClient:
    app = VelociPy()

    @app.get("/me")
    def me(credentials: Annotated[Any, Depends(scheme)]) -> Any:
        return {
            "credentials": credentials
            if credentials is None or isinstance(credentials, str)
            else vars(credentials)
        }

    return TestClient(app)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_http_basic() -> None:
    client = client_for(HTTPBasic())
    ok = client.get("/me", headers={"authorization": basic("ann", "s3cret:x")})
    assert ok.json() == {"credentials": {"username": "ann", "password": "s3cret:x"}}
    missing = client.get("/me")
    assert missing.status_code == 401 and missing.json() == NOT_AUTHENTICATED
    assert missing.headers["www-authenticate"] == "Basic"
    garbled = client.get("/me", headers={"authorization": "Basic !!!"})
    assert garbled.status_code == 401 and garbled.headers["www-authenticate"] == "Basic"
    no_colon = client.get(
        "/me", headers={"authorization": "Basic " + base64.b64encode(b"ann").decode()}
    )
    assert no_colon.status_code == 401
    realm = client_for(HTTPBasic(realm="staff")).get("/me")
    assert realm.headers["www-authenticate"] == 'Basic realm="staff"'
    optional = client_for(HTTPBasic(auto_error=False)).get("/me")
    assert optional.json() == {"credentials": None}


def test_http_bearer_and_digest() -> None:
    bearer = client_for(HTTPBearer())
    ok = bearer.get("/me", headers={"authorization": "Bearer abc.def"})
    assert ok.json() == {"credentials": {"scheme": "Bearer", "credentials": "abc.def"}}
    for headers in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer"}):
        refused = bearer.get("/me", headers=headers)
        assert refused.status_code == 401 and refused.json() == NOT_AUTHENTICATED
        assert refused.headers["www-authenticate"] == "Bearer"
    assert client_for(HTTPBearer(auto_error=False)).get("/me").json() == {"credentials": None}
    digest = client_for(HTTPDigest())
    assert digest.get("/me").headers["www-authenticate"] == "Digest"
    got = digest.get("/me", headers={"authorization": 'Digest username="ann"'})
    assert got.json()["credentials"]["scheme"] == "Digest"
    assert HTTPAuthorizationCredentials("Bearer", "x").credentials == "x"


def test_api_keys_in_query_header_and_cookie() -> None:
    query = client_for(APIKeyQuery(name="key"))
    assert query.get("/me?key=k1").json() == {"credentials": "k1"}
    refused = query.get("/me")
    assert refused.status_code == 401 and refused.json() == NOT_AUTHENTICATED
    assert refused.headers["www-authenticate"] == "APIKey"
    header = client_for(APIKeyHeader(name="X-Key"))
    assert header.get("/me", headers={"x-key": "k2"}).json() == {"credentials": "k2"}
    assert header.get("/me").status_code == 401
    cookie = client_for(APIKeyCookie(name="session"))
    assert cookie.get("/me", headers={"cookie": "session=k3"}).json() == {"credentials": "k3"}
    optional = client_for(APIKeyHeader(name="X-Key", auto_error=False))
    assert optional.get("/me").json() == {"credentials": None}


def test_oauth2_bearers() -> None:
    password = client_for(OAuth2PasswordBearer(tokenUrl="token"))
    assert password.get("/me", headers={"authorization": "Bearer t0k"}).json() == {
        "credentials": "t0k"
    }
    refused = password.get("/me", headers={"authorization": "Basic x"})
    assert refused.status_code == 401 and refused.json() == NOT_AUTHENTICATED
    assert refused.headers["www-authenticate"] == "Bearer"
    code = client_for(OAuth2AuthorizationCodeBearer(authorizationUrl="auth", tokenUrl="token"))
    assert code.get("/me").status_code == 401
    lax = client_for(OAuth2PasswordBearer(tokenUrl="token", auto_error=False))
    assert lax.get("/me").json() == {"credentials": None}


def test_schemes_record_their_openapi_description() -> None:
    assert HTTPBasic().model == {"type": "http", "scheme": "basic"}
    assert HTTPBearer(bearerFormat="JWT", description="d").model == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "d",
    }
    assert APIKeyHeader(name="X-Key").model == {"type": "apiKey", "in": "header", "name": "X-Key"}
    scheme = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "Read me"})
    assert scheme.model == {
        "type": "oauth2",
        "flows": {"password": {"tokenUrl": "token", "scopes": {"me": "Read me"}}},
    }
    assert scheme.scheme_name == "OAuth2PasswordBearer"
    assert HTTPBasic(scheme_name="staff").scheme_name == "staff"


def test_security_scopes_accumulate_from_the_route_down() -> None:
    app = VelociPy()
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "", "items": ""})

    def current_user(
        security_scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]
    ) -> dict[str, Any]:
        return {"token": token, "needs": security_scopes.scopes, "str": security_scopes.scope_str}

    def active_user(
        user: Annotated[dict[str, Any], Security(current_user, scopes=["me"])],
    ) -> dict[str, Any]:
        return user

    @app.get("/items")
    def items(user: Annotated[dict[str, Any], Security(active_user, scopes=["items"])]) -> Any:
        return user

    @app.get("/plain")
    def plain(user: Annotated[dict[str, Any], Depends(current_user)]) -> Any:
        return user

    client = TestClient(app)
    bearer = {"authorization": "Bearer t"}
    assert client.get("/items", headers=bearer).json() == {
        "token": "t",
        "needs": ["items", "me"],
        "str": "items me",
    }
    assert client.get("/plain", headers=bearer).json() == {"token": "t", "needs": [], "str": ""}
    with pytest.raises(TypeError, match="list of scope names"):
        Security(current_user, scopes="me")  # type: ignore[arg-type]


def test_the_password_form() -> None:
    app = VelociPy()

    @app.post("/token")
    def token(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> dict[str, Any]:
        return {"user": form.username, "password": form.password, "scopes": form.scopes}

    @app.post("/strict")
    def strict(form: Annotated[OAuth2PasswordRequestFormStrict, Depends()]) -> str:
        return form.grant_type

    client = TestClient(app)
    ok = client.post("/token", data={"username": "ann", "password": "pw", "scope": "me items"})
    assert ok.json() == {"user": "ann", "password": "pw", "scopes": ["me", "items"]}
    missing = client.post("/token", data={"username": "ann"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "password"]
    wrong_grant = client.post(
        "/token", data={"username": "a", "password": "p", "grant_type": "client_credentials"}
    )
    assert wrong_grant.status_code == 422
    assert client.post("/strict", data={"username": "a", "password": "p"}).status_code == 422
    granted = client.post(
        "/strict", data={"username": "a", "password": "p", "grant_type": "password"}
    )
    assert granted.json() == "password"


def test_credentials_are_plain_dataclasses() -> None:
    credentials = HTTPBasicCredentials(username="a", password="b")
    assert credentials == HTTPBasicCredentials("a", "b")
