"""`GZipMiddleware`: compress responses for clients that accept gzip, as a pure transform.

Behaviour follows Starlette's middleware of the same name: only when the
request's `Accept-Encoding` mentions gzip; whole bodies under `minimum_size`
bytes are left alone; streamed bodies are compressed chunk by chunk (each
chunk flushed, so a stream stays a stream); a response that already has a
`Content-Encoding`, a partial one (206) or an excluded content type (images,
archives, event streams ...) passes untouched; every response that could have
been compressed gets `Vary: Accept-Encoding`.

Compression is CPU work done where the driver runs the exchange (on the
event loop for the async servers), a few milliseconds per megabyte at the
default level: fine for API responses; put large static files behind a
server or CDN that compresses ahead of time.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .._datastructures import RawHeaders
from .._events import RequestHead, Respond, StreamBody
from ._transform import Transform

DEFAULT_EXCLUDED_CONTENT_TYPES = (
    "application/grpc",
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "audio/*",
    "font/woff",
    "font/woff2",
    "image/avif",
    "image/gif",
    "image/jpeg",
    "image/png",
    "image/webp",
    "text/event-stream",
    "video/*",
)


class GZipMiddleware(Transform):
    """Gzip response bodies when the client accepts it.

    Args:
        minimum_size: Whole bodies smaller than this many bytes are sent as they are.
        compresslevel: zlib level, 1 (fast) to 9 (small).
        exclude_content_types: Media types never compressed (`type/*` for a whole type).
    """

    def __init__(
        self,
        app: Any = None,
        minimum_size: int = 500,
        compresslevel: int = 9,
        *,
        exclude_content_types: tuple[str, ...] = DEFAULT_EXCLUDED_CONTENT_TYPES,
    ) -> None:
        super().__init__(app)
        if not 1 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be 1 to 9, got {compresslevel}")
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.exclude_content_types = frozenset(t.lower() for t in exclude_content_types)

    def response(self, head: RequestHead, respond: Respond) -> Respond:
        headers = RawHeaders(respond.headers)
        if "content-encoding" in headers or respond.status == 206 or self._excluded(headers):
            return respond
        stream = respond.stream
        if stream is None and len(respond.body) < self.minimum_size:
            if head.method != "HEAD" or int(headers.get("content-length", "0")) < self.minimum_size:
                return respond
        headers.add_vary_header("Accept-Encoding")
        if not _accepts_gzip(head):
            return respond
        if head.method == "HEAD":
            # No body to compress, and its compressed length is unknown without it.
            headers["content-encoding"] = "gzip"
            if "content-length" in headers:
                del headers["content-length"]
            return respond
        if stream is None:
            respond.body = gzip_bytes(respond.body, self.compresslevel)
            headers["content-length"] = str(len(respond.body))
        else:
            if "content-length" in headers:
                del headers["content-length"]
            iterator: Any = stream.iterator
            compressed: Any = (
                _gzip_async(iterator, self.compresslevel)
                if stream.is_async
                else _gzip_sync(iterator, self.compresslevel)
            )
            respond.stream = StreamBody(compressed, stream.is_async)
        headers["content-encoding"] = "gzip"
        return respond

    def _excluded(self, headers: RawHeaders) -> bool:
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if not media_type:
            return False
        excluded = self.exclude_content_types
        if media_type in excluded or media_type.partition("/")[0] + "/*" in excluded:
            return True
        return media_type.startswith("application/grpc+") and "application/grpc" in excluded


def _accepts_gzip(head: RequestHead) -> bool:
    for name, value in head.headers:
        if name == b"accept-encoding" and b"gzip" in value:
            return True
    return False


def _compressor(level: int) -> Any:
    return zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing


def gzip_bytes(body: bytes, level: int) -> bytes:
    compressor = _compressor(level)
    compressed: bytes = compressor.compress(body) + compressor.flush()
    return compressed


def _gzip_sync(chunks: Iterator[bytes], level: int) -> Iterator[bytes]:
    compressor = _compressor(level)
    try:
        for chunk in chunks:
            # A sync flush per chunk: the client gets what the app has produced so far.
            out = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if out:
                yield out
        yield compressor.flush()
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def _gzip_async(chunks: AsyncIterator[bytes], level: int) -> AsyncIterator[bytes]:
    compressor = _compressor(level)
    try:
        async for chunk in chunks:
            out = compressor.compress(chunk) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if out:
                yield out
        yield compressor.flush()
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
