"""Response events for the h11 connection: each header set is checked by h11 once, then trusted.

`h11.Response` checks every header against h11's grammar (two regular-expression
matches and two type conversions per header) each time it is built: on `POST
/signup` that was about 2 % of all the work the h11 path does for a request. Yet an
app answers with the same few header sets over and over. So the app's header
list is checked once, by h11 itself (an `h11.Response` is built from it and
thrown away); a list it accepted is remembered under the tuple of its headers,
and the next response with the same headers is built with h11's `_parsed=True`,
the flag its own parser uses for headers it has already checked.

Only the per-header grammar is skipped: the framing checks (conflicting
Content-Length values, Transfer-Encoding) run on every response either way. The
server's own lines (Date, Server, `--header`, `Connection: close`) are checked
the same way (`server_lines_checked`); the Date value is an HTTP-date we format.
Anything else (a header set h11 refused, an unhashable or `str` header, a status
that is not a plain `int`) takes h11's full path, which is the reference: an app
header h11 refuses raises `h11.LocalProtocolError` there, as it always did.
"""

from __future__ import annotations

import inspect

import h11

from ._wire import reason

#: Header sets h11 has checked: the tuple of their headers -> whether h11 accepted them.
_CHECKED: dict[tuple[tuple[bytes, bytes], ...], bool] = {}
#: Distinct header sets remembered at most (per-response values, such as cookies or
#: ETags, would otherwise grow it without bound); past it, it starts over.
CHECKED_MAX = 512

#: Whether this h11 still takes `_parsed` (a private flag): if not, every response
#: takes the full path, as before this module existed.
_HAS_PARSED = "_parsed" in inspect.signature(h11.Response.__init__).parameters

_Response = h11.Response


def checked(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether h11 has accepted this exact header list (checking it now if it is new)."""
    if not _HAS_PARSED:
        return False
    try:
        key = tuple(headers)
        known = _CHECKED.get(key)
    except TypeError:  # an unhashable header (a list, a bytearray): the full path
        return False
    if known is None:
        known = all(
            type(pair) is tuple
            and len(pair) == 2
            and type(pair[0]) is bytes
            and type(pair[1]) is bytes
            for pair in key
        )
        if known:
            try:
                _Response(status_code=200, headers=list(key))
            except h11.LocalProtocolError:
                known = False
        if len(_CHECKED) >= CHECKED_MAX:
            _CHECKED.clear()
        _CHECKED[key] = known
    return known


def response_event(status: int, headers: list[tuple[bytes, bytes]], trusted: bool) -> h11.Response:
    """The `h11.Response` for `headers` (the app's followed by the server's own lines).

    `trusted`: the app's part passed `checked` and the server's lines did too.
    """
    if trusted and type(status) is int:
        return _Response(status_code=status, headers=headers, reason=reason(status), _parsed=True)
    return _Response(status_code=status, headers=headers, reason=reason(status))


def server_lines_checked(default_headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the server's own lines, with a Date and `Connection: close`, pass h11's check."""
    sample = [
        (b"date", b"Mon, 30 Nov 2026 12:00:00 GMT"),
        *default_headers,
        (b"connection", b"close"),
    ]
    return checked(sample)
