"""Response classes a handler may return, and the JSON encoding of plain return values.

A handler returning a dict, list, dataclass, pydantic model, str, number or None
gets a JSON response. Returning a `Response` (or a subclass) gives full control.
Bodies are rendered when the response is built, so an encoding error surfaces in
the handler's own traceback, not later in an adapter.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import uuid
from collections.abc import AsyncIterable, Iterable, Iterator, Mapping, MutableMapping
from email.utils import format_datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

from ._events import RequestHead, StreamBody


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):  # pydantic v2
        return model_dump(mode="json")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
)
# `JSONEncoder.encode` builds a new C encoder on every call; this one is built once.
# Without a markers dict it skips the circular-reference check: a circular value
# ends in RecursionError instead of ValueError, either way a logged 500.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_iterencode: Any = (
    _c_make_encoder(
        None,
        _json_default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
    if _c_make_encoder is not None
    else None
)


def encode_json(value: Any) -> bytes:
    """Encode `value` as compact UTF-8 JSON, knowing dataclasses, pydantic, dates, UUIDs."""
    if _iterencode is None:  # pragma: no cover - CPython always has the C encoder
        return _encoder.encode(value).encode("utf-8")
    if type(value) is str:  # the C encoder only takes containers and scalars via a list
        return _encoder.encode(value).encode("utf-8")
    # `encode()`: UTF-8 is the default, and naming it costs a look-up of the codec's name.
    return "".join(_iterencode(value, 0)).encode()


class Response:
    """A response with a fully rendered body.

    Args:
        content: The body: bytes, str (encoded as UTF-8), or None for no body.
        status_code: The HTTP status.
        headers: Extra headers; `content-length` is computed, never taken from here.
        media_type: The `content-type`, completed with `; charset=utf-8` for text.
    """

    media_type: str | None = None
    charset = "utf-8"

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self.raw_headers = self._build_headers(headers)

    def render(self, content: Any) -> bytes:
        """Turn `content` into body bytes; subclasses override this."""
        if content is None:
            return b""
        if isinstance(content, (bytes, bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(f"{type(self).__name__} content must be bytes or str, got {content!r}")

    def _build_headers(self, headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = []
        has_type = False
        if headers:
            for name, value in headers.items():
                key = name.lower().encode("latin-1")
                if key == b"content-length":
                    continue
                has_type = has_type or key == b"content-type"
                raw.append((key, str(value).encode("latin-1")))
        if not has_type and self.media_type is not None:
            content_type = self.media_type
            if content_type.startswith("text/") and "charset=" not in content_type:
                content_type += f"; charset={self.charset}"
            raw.append((b"content-type", content_type.encode("latin-1")))
        return raw

    #: A module this class needs (e.g. "orjson"): a route naming the class as its
    #: `response_class` is refused at declaration when the module is missing.
    requires: str | None = None

    #: Responses that depend on the request's headers (a file answering `Range`) set
    #: this, and get `prepare(head)` called before they are sent.
    reads_request = False

    @property
    def headers(self) -> MutableHeaders:
        """The headers set so far: a live, case-insensitive view (`headers["x"] = "1"` works)."""
        return MutableHeaders(self)

    def set_header(self, name: str, value: str) -> None:
        """Set header `name`, replacing any earlier value."""
        key = name.lower().encode("latin-1")
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != key]
        self.raw_headers.append((key, value.encode("latin-1")))

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: datetime.datetime | str | int | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a `Set-Cookie` header (Starlette's signature and output).

        `expires` is a datetime, an HTTP date string, or seconds from now.
        """
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = max_age
        if expires is not None:
            if isinstance(expires, datetime.datetime):
                morsel["expires"] = format_datetime(expires, usegmt=True)
            else:
                morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be 'strict', 'lax' or 'none'")
            morsel["samesite"] = samesite
        header = cookie.output(header="").strip()
        if partitioned:
            header += "; Partitioned"
        self.raw_headers.append((b"set-cookie", header.encode("latin-1")))

    def delete_cookie(
        self,
        key: str,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Tell the client to drop cookie `key` (an expired, empty `Set-Cookie`)."""
        self.set_cookie(
            key,
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    def prepare(self, head: RequestHead) -> None:
        """Adapt to the request before sending; called only when `reads_request` is set."""

    def stream_body(self) -> StreamBody | None:
        """The streamed body, for streaming responses; None when `body` is complete."""
        return None


class MutableHeaders(MutableMapping[str, str]):
    """A response's headers, case-insensitive, editable in place (like Starlette's).

    Reading gives the first value of a name; setting replaces every value of it;
    `append` adds one more (for `Set-Cookie`-like headers).
    """

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __getitem__(self, name: str) -> str:
        wanted = name.lower().encode("latin-1")
        for key, value in self._response.raw_headers:
            if key == wanted:
                return value.decode("latin-1")
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        self._response.set_header(name, value)

    def __delitem__(self, name: str) -> None:
        wanted = name.lower().encode("latin-1")
        raw = self._response.raw_headers
        kept = [(k, v) for k, v in raw if k != wanted]
        if len(kept) == len(raw):
            raise KeyError(name)
        raw[:] = kept

    def __iter__(self) -> Iterator[str]:
        seen: list[str] = []
        for key, _ in self._response.raw_headers:
            name = key.decode("latin-1")
            if name not in seen:
                seen.append(name)
        return iter(seen)

    def __len__(self) -> int:
        return len({key for key, _ in self._response.raw_headers})

    def append(self, name: str, value: str) -> None:
        """Add a value for `name`, keeping the ones already set."""
        self._response.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    def getlist(self, name: str) -> list[str]:
        """Every value of `name`, in order."""
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._response.raw_headers if k == wanted]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The header pairs themselves (the response's own list)."""
        return self._response.raw_headers

    def __repr__(self) -> str:
        return f"MutableHeaders({self._response.raw_headers!r})"


class JSONResponse(Response):
    """`content` encoded as JSON."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


class RedirectResponse(Response):
    """A redirect to `url` (307 by default, which keeps the method and body)."""

    # PEP 3333 validators want a Content-Type on every response with a body
    # allowed; an empty text/plain one is the harmless choice.
    media_type = "text/plain"

    def __init__(
        self, url: str, status_code: int = 307, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(None, status_code, headers)
        self.set_header("location", quote(url, safe=":/%#?=@[]!$&'()*+,;"))


class StreamingResponse(Response):
    """A body produced chunk by chunk by a sync or async iterator of bytes or str."""

    def __init__(
        self,
        content: Iterable[bytes | str] | AsyncIterable[bytes | str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self._content = content
        super().__init__(None, status_code, headers, media_type)

    def stream_body(self) -> StreamBody:
        content = self._content
        if isinstance(content, AsyncIterable):
            return StreamBody(_encode_async(content, self.charset), is_async=True)
        return StreamBody(_encode_sync(content, self.charset), is_async=False)


def _encode_sync(chunks: Iterable[bytes | str], charset: str) -> Any:
    for chunk in chunks:
        yield chunk.encode(charset) if isinstance(chunk, str) else bytes(chunk)


async def _encode_async(chunks: AsyncIterable[bytes | str], charset: str) -> Any:
    async for chunk in chunks:
        yield chunk.encode(charset) if isinstance(chunk, str) else bytes(chunk)
