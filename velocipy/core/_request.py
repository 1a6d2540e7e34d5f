"""`Request`: the handler's view of the incoming request.

Handlers that declare a `Request` parameter get one. When the route reads no
body parameter, the body is not read before the handler: the exchange asks the
driver for `perform` (the `OpenBody` effect) and the request reads the body
when the handler asks, through the same effects the core uses (`ReadChunk`
pieces, spooled uploads). So `request.stream()` never holds the body whole,
and `await request.body()`, `.json()` and `.form()` read it on first use and
keep it, as Starlette's do: `.stream()` after `.body()` yields the kept body,
`.body()` after `.stream()` was read to its end raises `RuntimeError`.
When a body parameter made the exchange read the body first, every method
answers from what was read.
"""

from __future__ import annotations

import dataclasses
import json
import json.scanner
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from types import TracebackType
from typing import Any
from urllib.parse import quote

from ._datastructures import Headers, QueryParams, State, parse_cookie_header
from ._errors import BodyTooLarge, InvalidJSON, MalformedBody
from ._events import Effect, ReadBody, RequestHead
from ._forms import parse_form, read_form
from ._pieces import BodyPieces
from ._uploads import FormData, FormLimits, UploadFile

#: `await perform(effect)`: the driver's answer to `OpenBody` (see `_events.OpenBody`).
Perform = Callable[[Effect], Awaitable[Any]]

#: `request.stream()` counts its pieces against no limit of the app's (the handler
#: decides what to keep); the server's own cap on bodies, if it has one, still holds.
_UNBOUNDED = sys.maxsize
_DEFAULT_MAX_BODY = 16 * 1024 * 1024


class BodyAccess:
    """What a request needs to read its body after the exchange: the driver's `perform`,
    the exchange's list of uploads to close, and whether reading is still allowed.

    The exchange closes it once the response is out: by then the connection may
    be serving its next request, so a background task must not read from it.
    """

    __slots__ = ("perform", "uploads", "open")

    def __init__(self, perform: Perform, uploads: list[UploadFile]) -> None:
        self.perform = perform
        #: Every `UploadFile` `request.form()` makes: the exchange closes them after the tasks.
        self.uploads = uploads
        self.open = True

    async def __call__(self, effect: Effect) -> Any:
        if not self.open:
            raise RuntimeError(
                "the request body can no longer be read: the response has been sent "
                "(read it in the handler, and hand the bytes to the task)"
            )
        return await self.perform(effect)


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
        "_access",
        "_pieces",
        "_consumed",
    )

    def __init__(
        self,
        head: RequestHead,
        path_params: dict[str, Any] | None = None,
        body: bytes | None = b"",
        route_path: str = "",
        app: Any = None,
        access: BodyAccess | None = None,
    ) -> None:
        self.head = head
        self.path_params: dict[str, Any] = path_params or {}
        #: The body once read whole; None while it is still to be read (or was streamed).
        self._body = body
        self._access = access
        self._pieces: BodyPieces | None = None
        #: The body was read to its end by `stream()` or a form: there is nothing left to read.
        self._consumed = body is None and access is None
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
        """The raw request body, read whole on first use (413 past the app's `max_body_size`)."""
        if self._body is None:
            limit = getattr(self.app, "max_body_size", _DEFAULT_MAX_BODY)
            chunks = [chunk async for chunk in self._chunks(limit)]
            self._body = b"".join(chunks)
        return self._body

    def stream(self) -> AsyncIterator[bytes]:
        """The raw body as an async iterator of chunks, read from the client as it is iterated.

        As Starlette's: the last chunk is `b""`; after `body()`, the kept body is
        yielded; once the stream was read to its end, a second `stream()` and
        `body()` raise `RuntimeError("Stream consumed")`. The app's `max_body_size`
        does not apply here (nothing is kept); a server's own cap does.
        """
        return self._chunks(_UNBOUNDED)

    async def _chunks(self, limit: int) -> AsyncIterator[bytes]:
        body = self._body
        if body is not None:
            if body:
                yield body
            yield b""
            return
        access = self._access
        if self._consumed or access is None:
            raise RuntimeError("Stream consumed")
        pieces = self._pieces
        if pieces is None:
            pieces = self._pieces = BodyPieces(self.headers, limit)
        elif limit < pieces.limit:
            pieces.limit = limit
            if pieces.declared is not None and pieces.declared > limit:
                raise BodyTooLarge(limit)
        while (read := pieces.next()) is not None:
            data, more = await access(read)
            pieces.took(data, more)
            if data:
                yield data
        self._consumed = True
        yield b""

    def form(
        self,
        *,
        max_files: int | float | None = None,
        max_fields: int | float | None = None,
        max_part_size: int | None = None,
    ) -> FormCall:
        """The form: fields and `UploadFile`s, from a urlencoded or multipart body.

        `await request.form()`, or `async with request.form() as form:` to close
        its files on the way out. The limits default to the app's `form_limits`;
        `max_files`, `max_fields` and `max_part_size` (the largest non-file
        field) override them for this call, as Starlette's. A form the route
        already read (its `Form()`/`File()` parameters) is returned as it is.
        """
        return FormCall(self._read_form(max_files, max_fields, max_part_size))

    async def _read_form(
        self,
        max_files: int | float | None,
        max_fields: int | float | None,
        max_part_size: int | None,
    ) -> FormData:
        if self._form is not None:
            return self._form
        limits: FormLimits = getattr(self.app, "form_limits", None) or FormLimits()
        changes: dict[str, Any] = {}
        if max_files is not None:
            changes["max_files"] = max_files
        if max_fields is not None:
            changes["max_fields"] = max_fields
        if max_part_size is not None:
            changes["max_field_size"] = max_part_size
        if changes:
            limits = dataclasses.replace(limits, **changes)
        if self._body is not None:
            self._form = FormData(parse_form(self.headers, self._body, limits))
            return self._form
        access = self._access
        if self._consumed or self._pieces is not None or access is None:
            raise RuntimeError("Stream consumed")
        max_body = getattr(self.app, "max_body_size", _DEFAULT_MAX_BODY)
        flow = read_form(self.headers, limits, ReadBody(max_body), frozenset(), access.uploads)
        self._form = FormData(await self._drive(flow))
        if self._body is None:  # multipart: streamed, nothing kept
            self._consumed = True
        return self._form

    async def _drive(self, flow: Generator[Effect, Any, dict[str, list[Any]]]) -> Any:
        """Run the form reader's effects with the driver's `perform` (or the kept body)."""
        access = self._access
        assert access is not None
        try:
            effect = next(flow)
            while True:
                try:
                    if type(effect) is ReadBody:
                        value: Any = await self.body()
                    else:
                        value = await access(effect)
                except Exception as error:
                    effect = flow.throw(error)
                else:
                    effect = flow.send(value)
        except StopIteration as done:
            return done.value

    async def json(self) -> Any:
        """The body decoded as JSON; a malformed body answers 400."""
        if self._json is _UNSET:
            self._json = decode_json(await self.body())
        return self._json

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


class FormCall:
    """What `request.form()` returns: await it, or use it as `async with` (files closed after)."""

    __slots__ = ("_reading", "_form")

    def __init__(self, reading: Awaitable[FormData]) -> None:
        self._reading = reading
        self._form: FormData | None = None

    def __await__(self) -> Generator[Any, None, FormData]:
        return self._reading.__await__()

    async def __aenter__(self) -> FormData:
        self._form = await self._reading
        return self._form

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._form is not None:
            await self._form.close()


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
        text = body.decode()  # UTF-8, strict: the defaults (naming them costs a look-up)
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
