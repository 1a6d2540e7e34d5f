"""`Request`: the handler's view of the incoming request.

Handlers that declare a `Request` parameter get one. Its body has already been
read by the adapter (the exchange asks for it before calling the handler), so
`await request.body()` and `await request.json()` never do I/O; they are
coroutines only so code written for Starlette and FastAPI keeps working.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from ._datastructures import Headers, QueryParams, State, parse_cookie_header
from ._errors import InvalidJSON, MalformedBody
from ._events import RequestHead
from ._forms import parse_form
from ._uploads import FormData, FormLimits


class Request:
    """The method, URL, headers, parameters and body of the current request."""

    __slots__ = (
        "head",
        "path_params",
        "_body",
        "_headers",
        "_query",
        "_cookies",
        "_json",
        "route_path",
        "app",
        "_state",
        "_form",
    )

    def __init__(
        self,
        head: RequestHead,
        path_params: dict[str, Any] | None = None,
        body: bytes = b"",
        route_path: str = "",
        app: Any = None,
    ) -> None:
        self.head = head
        self.path_params: dict[str, Any] = path_params or {}
        self._body = body
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._json: Any = _UNSET
        self.route_path = route_path
        #: The application serving this request.
        self.app = app
        self._state: State | None = None
        #: The parsed form, when the route reads one (set by the exchange).
        self._form: FormData | None = None

    @property
    def state(self) -> State:
        """A free namespace (`request.state.user = ...`), shared with the request's middleware."""
        state = self._state
        if state is None:
            # A request seen by HTTP middleware carries its state on the head (a
            # `StatefulHead`), so that the middleware and the handler share one.
            state = getattr(self.head, "state", None)
            if state is None:
                state = State()
            self._state = state
        return state

    @property
    def base_url(self) -> str:
        """Scheme, host and root path, ending with "/"."""
        host = self.headers.get("host")
        if host is None and self.head.server is not None:
            host = f"{self.head.server[0]}:{self.head.server[1]}"
        return f"{self.head.scheme}://{host or 'localhost'}{quote(self.head.root_path)}/"

    def url_for(self, name: str, /, **path_params: Any) -> str:
        """The absolute URL of the route called `name`, its parameters filled in."""
        if self.app is None:
            raise RuntimeError("url_for needs the request's app; this Request has none")
        path: str = self.app.url_path_for(name, **path_params)
        return self.base_url.rstrip("/") + quote(path)

    @property
    def method(self) -> str:
        return self.head.method

    @property
    def path(self) -> str:
        return self.head.path

    @property
    def url(self) -> str:
        """The full URL as the client asked for it (scheme, host, path, query)."""
        host = self.headers.get("host")
        if host is None and self.head.server is not None:
            host = f"{self.head.server[0]}:{self.head.server[1]}"
        url = f"{self.head.scheme}://{host or 'localhost'}{quote(self.head.root_path + self.path)}"
        if self.head.query_string:
            url += "?" + self.head.query_string.decode("latin-1")
        return url

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self.head.headers)
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.head.query_string)
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        if self._cookies is None:
            self._cookies = parse_cookie_header(self.headers.get("cookie", "") or "")
        return self._cookies

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer's `(host, port)`, when the server knows it."""
        return self.head.client

    async def body(self) -> bytes:
        """The raw request body."""
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        """The raw body as an async iterator of chunks (here: the body read before the handler)."""
        if self._body:
            yield self._body

    async def form(self) -> FormData:
        """The form the route read (fields and `UploadFile`s), or the body parsed as urlencoded."""
        if self._form is None:
            lists = parse_form(self.headers, self._body, FormLimits())
            self._form = FormData(lists)
        return self._form

    async def json(self) -> Any:
        """The body decoded as JSON; a malformed body answers 400."""
        if self._json is _UNSET:
            self._json = decode_json(self._body)
        return self._json

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


_UNSET: Any = object()


_c_make_scanner: Any = getattr(json.scanner, "c_make_scanner", None)
# The same scanner `json.loads` uses (the default decoder's settings), built once.
_scan: Any = _c_make_scanner(json.JSONDecoder()) if _c_make_scanner is not None else None


def decode_json(body: bytes) -> Any:
    """Decode a JSON request body, turning every way it can fail into `MalformedBody`.

    JSON on the wire is UTF-8 (RFC 8259, section 8.1): other encodings that
    `json.loads` would guess from the first bytes are refused.
    """
    try:
        text = body.decode("utf-8")
        if _scan is not None:
            # `json.loads` is three Python-level calls and two regex matches around the
            # C scanner; call the scanner directly when the text is a JSON value with no
            # surrounding whitespace, the common case. Anything else (whitespace, errors,
            # a BOM) goes through `json.loads`, which accepts and rejects exactly as before.
            try:
                value, end = _scan(text, 0)
            except StopIteration:
                pass
            else:
                if end == len(text):
                    return value
        return json.loads(text)
    except UnicodeDecodeError:
        raise MalformedBody("Request body is not valid UTF-8") from None
    except json.JSONDecodeError as error:
        raise InvalidJSON(
            f"Invalid JSON body: {error.msg} at line {error.lineno} column {error.colno}",
            error.msg,
            error.pos,
        ) from None
    except RecursionError:
        raise MalformedBody("Invalid JSON body: nested too deeply") from None
