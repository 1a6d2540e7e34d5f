"""Small pieces of the server's output: the Date header, reason phrases, bare error responses.

The Date value changes once a second, so it is formatted once a second, not per
response. Error responses for requests that never reach the app (malformed,
too large, too slow) are written as plain bytes: h11 may already be in its
error state, and their body is only the reason phrase, never exception text.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from velocipy.core import reason_phrase

_date_second = -1
_date_value = b""


def date_header() -> bytes:
    """The current time as an HTTP-date (RFC 9110 §5.6.7), cached for the current second."""
    global _date_second, _date_value
    now = time.time()
    second = int(now)
    if second != _date_second:
        _date_value = formatdate(now, usegmt=True).encode("ascii")
        _date_second = second
    return _date_value


_REASONS: dict[int, bytes] = {}


def reason(status: int) -> bytes:
    """The reason phrase for `status` as bytes (cached)."""
    phrase = _REASONS.get(status)
    if phrase is None:
        phrase = _REASONS[status] = reason_phrase(status).encode("ascii")
    return phrase


def error_response(status: int, server_header: bytes) -> bytes:
    """A complete `status` response with `Connection: close` and the reason as a text body."""
    phrase = reason(status)
    body = phrase + b"\n"
    head = [
        b"HTTP/1.1 %d %s" % (status, phrase),
        b"content-type: text/plain; charset=utf-8",
        b"content-length: %d" % len(body),
        b"connection: close",
        b"date: " + date_header(),
    ]
    if server_header:
        head.append(b"server: " + server_header)
    return b"\r\n".join(head) + b"\r\n\r\n" + body
