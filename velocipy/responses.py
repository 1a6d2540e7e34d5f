"""Every response class, as `fastapi.responses` offers them; and the two that touch the world.

`FileResponse` sends a file from disk: it reads the file's size and times when
it is built (in the handler), and its body is read chunk by chunk by whichever
adapter sends it (in a worker thread under the async servers), so the core
never opens a file. It answers `Range: bytes=...` with 206, as Starlette does
for one range. `ORJSONResponse` renders with `orjson` when it is installed.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import stat
from collections.abc import Iterator, Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from velocipy.core import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    RequestHead,
    Response,
    StreamBody,
    StreamingResponse,
)

__all__ = [
    "FileResponse",
    "HTMLResponse",
    "JSONResponse",
    "ORJSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "StreamingResponse",
]


class ORJSONResponse(JSONResponse):
    """JSON rendered by `orjson` (faster on big bodies); needs `pip install orjson`."""

    requires = "orjson"

    def render(self, content: Any) -> bytes:
        try:
            import orjson
        except ImportError:
            raise RuntimeError("ORJSONResponse needs orjson: pip install orjson") from None
        rendered: bytes = orjson.dumps(
            content, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
        )
        return rendered


class FileResponse(Response):
    """The file at `path`, streamed from disk, with `Content-Length`, `Last-Modified`,
    `ETag` and `Accept-Ranges`; a single `Range: bytes=a-b` is answered with 206.

    Args:
        path: The file to send; a missing file raises `FileNotFoundError` here.
        status_code: The status of a full answer.
        headers: Extra headers.
        media_type: The content type; guessed from the file name when not given.
        filename: Sent as `Content-Disposition` (an attachment), when given.
        content_disposition_type: `"attachment"` or `"inline"`.
    """

    chunk_size = 64 * 1024
    reads_request = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        stat_result: os.stat_result | None = None,
        content_disposition_type: str = "attachment",
    ) -> None:
        self.path = os.fspath(path)
        if media_type is None:
            media_type = mimetypes.guess_type(filename or self.path)[0] or "text/plain"
        super().__init__(None, status_code, headers, media_type)
        info = stat_result if stat_result is not None else os.stat(self.path)
        if not stat.S_ISREG(info.st_mode):
            raise RuntimeError(f"FileResponse: {self.path} is not a file")
        self.size = info.st_size
        self._start, self._end = 0, self.size  # the bytes to send: [start, end)
        self._send_body = True
        last_modified = formatdate(info.st_mtime, usegmt=True)
        etag = '"' + hashlib.md5(f"{info.st_mtime}-{info.st_size}".encode()).hexdigest() + '"'
        self._modified = info.st_mtime
        extra = [
            ("content-length", str(self.size)),
            ("last-modified", last_modified),
            ("etag", etag),
            ("accept-ranges", "bytes"),
        ]
        if filename is not None:
            if quote(filename) != filename:
                disposition = f"{content_disposition_type}; filename*=utf-8''{quote(filename)}"
            else:
                disposition = f'{content_disposition_type}; filename="{filename}"'
            extra.append(("content-disposition", disposition))
        present = {name for name, _ in self.raw_headers}
        for name, value in extra:
            if name.encode() not in present:
                self.raw_headers.append((name.encode(), value.encode("latin-1")))

    def prepare(self, head: RequestHead) -> None:
        """Narrow to the requested range, if the request asks for one we can serve."""
        if head.method not in ("GET", "HEAD") or self.status_code != 200:
            return
        ranges = if_range = None
        for name, value in head.headers:
            if name == b"range":
                ranges = value.decode("latin-1")
            elif name == b"if-range":
                if_range = value.decode("latin-1")
        if ranges is None or (if_range is not None and not self._still_valid(if_range)):
            return
        try:
            span = _parse_range(ranges, self.size)
        except _Unsatisfiable:
            self.status_code = 416
            self._send_body = False
            self._set("content-range", f"bytes */{self.size}")
            self._set("content-length", "0")
            return
        if span is None:
            return  # not a single byte range: answer with the whole file, as RFC 9110 allows
        start, end = span
        self.status_code = 206
        self._start, self._end = start, end
        self._set("content-range", f"bytes {start}-{end - 1}/{self.size}")
        self._set("content-length", str(end - start))

    def _still_valid(self, if_range: str) -> bool:
        """Whether `If-Range` (an ETag or a date) still names this version of the file."""
        if if_range.startswith(('"', "W/")):
            return if_range == self.headers.get("etag")
        try:
            return parsedate_to_datetime(if_range).timestamp() >= int(self._modified)
        except (TypeError, ValueError):
            return False

    def _set(self, name: str, value: str) -> None:
        self.set_header(name, value)

    def stream_body(self) -> StreamBody | None:
        if not self._send_body or self._end <= self._start:
            return StreamBody(iter(()), is_async=False)
        return StreamBody(
            _read_file(self.path, self._start, self._end, self.chunk_size), is_async=False
        )


class _Unsatisfiable(Exception):
    """The range asked for lies outside the file (answered with 416)."""


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`(start, end)` for one satisfiable byte range; None to ignore the header.

    Raises `_Unsatisfiable` for a range past the end of the file.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        length = int(last)  # the last N bytes
        if length == 0 or size == 0:
            raise _Unsatisfiable
        return max(size - length, 0), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None  # invalid range: ignored (RFC 9110, section 14.1.1)
    if start >= size:
        raise _Unsatisfiable
    return start, end


def _read_file(path: str, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
    """The bytes `[start, end)` of `path`; opened only when the adapter starts reading."""
    with open(path, "rb") as file:
        file.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = file.read(min(chunk_size, remaining))
            if not chunk:
                break  # the file shrank since it was stat'ed: send what there is
            remaining -= len(chunk)
            yield chunk
