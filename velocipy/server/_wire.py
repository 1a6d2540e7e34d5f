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

#: The Date value and the second it is for: `_date_from <= time.time() < _date_until`.
_date_value = b""
_date_from = 0.0
_date_until = 0.0


def date_header() -> bytes:
    """The current time as an HTTP-date (RFC 9110 §5.6.7), cached for the current second."""
    now = time.time()
    # Two float comparisons rather than `int(now)` against the cached second: a call less
    # per response (and a clock set back gets a fresh value at once).
    if _date_from <= now < _date_until:
        return _date_value
    return date_for(now)[0]


def date_for(now: float) -> tuple[bytes, float, float]:
    """The HTTP-date of `now`, and the second it holds for: (value, from, until)."""
    global _date_value, _date_from, _date_until
    second = int(now)
    _date_value = formatdate(second, usegmt=True).encode("ascii")
    _date_from = float(second)
    _date_until = _date_from + 1.0
    return _date_value, _date_from, _date_until


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
