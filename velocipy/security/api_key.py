"""API keys in a query parameter, a header or a cookie."""

from __future__ import annotations

from velocipy.core import Request
from velocipy.security._base import SecurityBase, _with_description


class APIKeyBase(SecurityBase):
    """An API key read from one place of the request; gives the key as a string."""

    where = ""

    def __init__(
        self,
        *,
        name: str,
        scheme_name: str | None = None,
        description: str | None = None,
        auto_error: bool = True,
    ) -> None:
        self.model = _with_description(
            {"type": "apiKey", "in": self.where, "name": name}, description
        )
        self.name = name
        self._named(scheme_name)
        self.auto_error = auto_error

    def make_authenticate_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "APIKey"}

    def _found(self, value: str | None) -> str | None:
        if not value:
            if self.auto_error:
                raise self.make_not_authenticated_error()
            return None
        return value


class APIKeyQuery(APIKeyBase):
    """An API key in the query string: `?api_key=...`."""

    where = "query"

    async def __call__(self, request: Request) -> str | None:
        return self._found(request.query_params.get(self.name))


class APIKeyHeader(APIKeyBase):
    """An API key in a request header: `X-API-Key: ...`."""

    where = "header"

    async def __call__(self, request: Request) -> str | None:
        return self._found(request.headers.get(self.name))


class APIKeyCookie(APIKeyBase):
    """An API key in a cookie."""

    where = "cookie"

    async def __call__(self, request: Request) -> str | None:
        return self._found(request.cookies.get(self.name))
