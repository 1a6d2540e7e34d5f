"""Response heads for the httptools connection: framed by h11's rules, checked once per header set.

Checking each response header (a token name, a value without CR, LF or NUL)
and looking for the framing headers costs a few regular-expression searches per
header: on `GET /hello` that was a fifth of all the work the server did for the
request. Yet an app answers with the same few header sets over and over (the
JSON fast path's two headers differ only in the length). So a header list is
checked once; when it is *plain* (every header valid, no Transfer-Encoding, no
Connection, at most one Content-Length) its encoded lines and declared length
are remembered under the tuple of its headers, and the next response with the
same headers costs one dictionary look-up. Anything else takes the general
path (`frame` and `encode`), which is the reference for what the cache keeps.

The server's own lines (Date, Server, `--header`) are not in the app's list:
they come pre-encoded (`ResponseTail`), checked once at start-up.
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING

from .._wire import date_for, date_header, reason

if TYPE_CHECKING:
    from .._server import Server

#: How a response body is delimited on the wire.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3

#: A response header name must be a token (RFC 9110 §5.1) ...
_BAD_NAME = re.compile(rb"[^-!#$%&'*+.^_`|~0-9a-zA-Z]")
#: ... and a value may not break the head (CR, LF) or hold NUL.
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

#: Plain header sets seen: the tuple of their headers -> (encoded lines, Content-Length or -1).
_PLAIN: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, int]] = {}
#: Distinct header sets remembered at most (apps with per-response values, such as
#: cookies or ETags, would otherwise grow it without bound); past it, it starts over.
PLAIN_MAX = 512

_STATUS_LINES: dict[int, bytes] = {}
#: The statuses whose responses may have a body (not 1xx, 204, 304): one look-up.
_BODY_STATUSES = frozenset(range(200, 1000)) - {204, 304}

_time = time.time


def status_line(status: int) -> bytes:
    """`HTTP/1.1 <status> <reason>\\r\\n` (cached)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %b\r\n" % (status, reason(status))
    return line


def response_head(
    status: int,
    headers: list[tuple[bytes, bytes]],
    is_head: bool,
    version: bytes,
    close: bool,
    server: Server,
) -> tuple[bytes, int, int, bool]:
    """The head of a response: (bytes, framing, declared length, whether to close after it).

    `headers` are the app's; the server's own lines are added. Raises `ValueError`
    for a header that would break the head.
    """
    tail = server.response_tail
    if tail is not None and status in _BODY_STATUSES:
        try:
            known = _PLAIN.get(tuple(headers))
        except TypeError:  # an unhashable header: the general path
            known = None
        if known is None:
            known = plain(headers)
        if known is not None:  # the usual case: a header set seen before
            lines, declared = known
            end = b"\r\n"
            if declared >= 0:
                framing = LENGTH
            else:  # as `frame`: chunked to an HTTP/1.1 client, else until the close
                declared = 0
                if version == b"1.1":
                    end = b"transfer-encoding: chunked\r\n\r\n"
                    framing = CHUNKED
                elif is_head:
                    framing = NO_BODY
                else:
                    framing = UNTIL_CLOSE
                    close = True
            if is_head:
                framing = NO_BODY
            if close:
                end = end[:-2] + b"connection: close\r\n\r\n"
            line = _STATUS_LINES.get(status) or status_line(status)
            # `tail.lines()` inlined while its lines hold (a call less per response).
            now = _time()
            if tail._from <= now < tail._until:
                head = b"".join((line, lines, tail._lines, end))
            else:
                head = b"".join((line, lines, tail.lines(), end))
            return head, framing, declared, close
    if tail is not None:
        headers += tail.pairs()
    else:
        if server.date_header:
            headers.append((b"date", date_header()))
        headers += server.default_headers
    framing, declared = frame(status, headers, is_head, version)
    if framing == UNTIL_CLOSE or (not close and _says_close(headers)):
        close = True
    return encode(status, headers, close), framing, declared, close


def _says_close(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the app's own `Connection` header asks to close (h11 honours it too)."""
    for name, value in headers:
        if name.lower() == b"connection":
            if b"close" in [token.strip() for token in value.lower().split(b",")]:
                return True
    return False


def plain(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int] | None:
    """(encoded lines, Content-Length or -1) of a plain header list, else None (see above).

    Raises `ValueError` for a header that would break the head.
    """
    try:
        key = tuple(headers)
        known = _PLAIN.get(key)
    except TypeError:  # an unhashable header (a list, a bytearray): the general path
        return None
    if known is not None:
        return known
    declared = -1
    for name, value in headers:
        check(name, value)
        lowered = name.lower()
        if lowered == b"content-length":
            if declared >= 0 or not value.isdigit():
                return None
            declared = int(value)
        elif lowered == b"transfer-encoding" or lowered == b"connection":
            return None
    if len(_PLAIN) >= PLAIN_MAX:
        _PLAIN.clear()
    known = _PLAIN[key] = (b"".join(b"%b: %b\r\n" % pair for pair in headers), declared)
    return known


def check(name: bytes, value: bytes) -> None:
    """Raise `ValueError` unless `name: value` is a header line that cannot break the head."""
    if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
        raise ValueError(f"invalid response header {name!r}")


def frame(
    status: int, headers: list[tuple[bytes, bytes]], is_head: bool, version: bytes
) -> tuple[int, int]:
    """How the body of this response is delimited (h11's rules), and its declared length.

    Adds `Transfer-Encoding: chunked` when a body of unknown length goes to an
    HTTP/1.1 client; removes it for an HTTP/1.0 client (the body then ends with
    the connection). Raises `ValueError` for a header that would break the head.
    """
    declared = -1
    chunked = False
    for name, value in headers:
        check(name, value)
        lowered = name.lower()
        if lowered == b"content-length":
            if not value.isdigit():
                raise ValueError(f"invalid response Content-Length {value!r}")
            declared = int(value)
        elif lowered == b"transfer-encoding":
            chunked = True
    if status < 200 or status == 204 or status == 304:
        return NO_BODY, 0
    if chunked or declared < 0:
        if version != b"1.1":
            if chunked:
                headers[:] = [h for h in headers if h[0].lower() != b"transfer-encoding"]
            return (NO_BODY if is_head else UNTIL_CLOSE), 0
        if not chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        return (NO_BODY if is_head else CHUNKED), 0
    return (NO_BODY if is_head else LENGTH), declared


def encode(status: int, headers: list[tuple[bytes, bytes]], close: bool) -> bytes:
    """The status line and header block of a response (the general path)."""
    lines = [status_line(status)]
    for name, value in headers:
        if close and name.lower() == b"connection":
            continue
        lines.append(b"%b: %b\r\n" % (name, value))
    if close:
        lines.append(b"connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class ResponseTail:
    """The lines the server adds to every response (Date, Server, `--header`), pre-encoded.

    `lines()` is them as bytes, the Date line refreshed once a second. `headers`
    is the same as header pairs but without Date, for the general path.
    """

    __slots__ = ("headers", "date", "_fixed", "_lines", "_from", "_until")

    def __init__(self, headers: list[tuple[bytes, bytes]], date: bool) -> None:
        for name, value in headers:
            check(name, value)
        self.headers = headers
        self.date = date
        self._fixed = b"".join(b"%b: %b\r\n" % pair for pair in headers)
        self._lines = self._fixed
        #: The time span in which `_lines` holds: `_from <= time.time() < _until` (without
        #: a Date line, always).
        self._from, self._until = (0.0, 0.0) if date else (-math.inf, math.inf)

    def lines(self) -> bytes:
        """The encoded lines, each ending in CRLF."""
        # The clock is read here rather than through `date_header()`: one call less per
        # response, on the path every response takes.
        now = _time()
        if self._from <= now < self._until:
            return self._lines
        date, self._from, self._until = date_for(now)
        self._lines = b"date: " + date + b"\r\n" + self._fixed
        return self._lines

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """The same lines as header pairs, Date first (for the general path)."""
        if not self.date:
            return self.headers
        return [(b"date", date_header()), *self.headers]
