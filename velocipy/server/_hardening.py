"""Request-head checks stricter than h11: what the server refuses before any app code runs.

h11 parses leniently where RFC 9112 lets a recipient choose, and only caps an
*incomplete* head, so a large head arriving in one read passes it. `HeadScanner`
watches the raw bytes of each head as they arrive and `check_request` looks at
the parsed head; each problem raises `Rejected` with the status that answers it
(the connection is then closed):

- whole head larger than the cap: 431 (our own cap, complete heads included);
- request line longer than the cap: 414; too many header fields: 431;
- bare LF line endings (RFC 9112 §2.2 allows them; we do not): 400;
- obsolete line folding (§5.2, h11 unfolds it): 400;
- both Content-Length and Transfer-Encoding (§6.1, the smuggling vector of
  python-hyper/h11#90): 400; Transfer-Encoding on HTTP/1.0 (§6.1): 400;
- a Host header missing or repeated on HTTP/1.1 (§3.2): 400;
- chunk sizes beyond any sane length (h11 accepts 20 hex digits): 400.
"""

from __future__ import annotations

from typing import Any

from ._config import ServerConfig

#: Largest chunk size accepted at all; larger is treated as an attack, not a big upload.
MAX_CHUNK_SIZE = 1 << 62

_TERMINATOR = b"\r\n\r\n"


class Rejected(Exception):
    """The request cannot be served; answer `status` and close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class HeadScanner:
    """Finds where a request head ends in a growing buffer, checking the raw bytes on the way.

    Feed it the buffer after each read; it scans only what is new, so a head
    dribbled byte by byte costs linear time. `feed` returns the offset just past
    the head's blank line, or -1 while the head is incomplete.
    """

    __slots__ = ("_max_head", "_max_line", "_max_headers", "_scanned", "_line_end")

    def __init__(self, config: ServerConfig) -> None:
        self._max_head = config.max_head_size
        self._max_line = config.max_request_line
        self._max_headers = config.max_headers
        self._scanned = 0
        self._line_end = -1

    def reset(self) -> None:
        """Start over for the next head."""
        self._scanned = 0
        self._line_end = -1

    def feed(self, buffer: bytes | bytearray) -> int:
        """Scan `buffer` (the bytes received since the head began); see the class docstring."""
        start = self._scanned
        size = len(buffer)
        end = buffer.find(_TERMINATOR, start - 3 if start > 3 else 0)
        stop = size if end < 0 else end + 4
        # Bare LF: every "\n" in the new region must be the end of a "\r\n".
        lf = buffer.count(b"\n", start, stop)
        if lf and lf != buffer.count(b"\r\n", start - 1 if start else 0, stop):
            raise Rejected(400, "line endings must be CRLF")
        if self._line_end < 0:
            line_end = buffer.find(b"\r\n", 0, stop)
            if line_end < 0:
                if stop > self._max_line:
                    raise Rejected(414, "request line too long")
            else:
                if line_end > self._max_line:
                    raise Rejected(414, "request line too long")
                self._line_end = line_end
        self._scanned = stop
        if end < 0:
            if size > self._max_head:
                raise Rejected(431, "request head too large")
            return -1
        if stop > self._max_head:
            raise Rejected(431, "request head too large")
        head = buffer[:stop]
        if b"\r\n " in head or b"\r\n\t" in head:
            raise Rejected(400, "obsolete line folding is not accepted")
        if head.count(b"\r\n") - 2 > self._max_headers:
            raise Rejected(431, "too many header fields")
        return stop


def check_request(headers: Any, http_version: bytes) -> tuple[int | None, bool]:
    """Refuse a parsed head h11 accepted but we will not serve (see the module docstring).

    Args:
        headers: The (lower-case name, value) pairs of the request.
        http_version: b"1.1" or b"1.0".

    Returns:
        The declared Content-Length (h11 has checked it is one number) or None,
        and whether the body is chunked.
    """
    hosts = 0
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    if chunked:
        if length is not None:
            raise Rejected(400, "both Content-Length and Transfer-Encoding")
        if http_version == b"1.0":
            raise Rejected(400, "Transfer-Encoding is not allowed in HTTP/1.0")
    if hosts != 1 and http_version == b"1.1":
        raise Rejected(400, "HTTP/1.1 needs exactly one Host header")
    return length, chunked


def check_chunk(h11_connection: Any, allowance: int) -> None:
    """Refuse a chunk whose declared size is absurd, before waiting for its bytes.

    h11 keeps the size of the chunk being read on its private chunked reader; if
    that attribute ever goes away this check becomes a no-op and the body limit
    still applies byte by byte.

    Raises:
        Rejected: 400 for a size past `MAX_CHUNK_SIZE`.
        ChunkOverLimit: the chunk alone would exceed `allowance`.
    """
    remaining = getattr(getattr(h11_connection, "_reader", None), "_bytes_in_chunk", 0)
    if type(remaining) is int and remaining:
        if remaining > MAX_CHUNK_SIZE:
            raise Rejected(400, "chunk size too large")
        if remaining > allowance:
            raise ChunkOverLimit()


class ChunkOverLimit(Exception):
    """A declared chunk size alone goes past the body limit (answered 413 by the caller)."""
