"""Response events for the h11 connection: each header set is checked and normalised by h11 once.

`h11.Response` checks every header against h11's grammar (two regular-expression
matches and two type conversions per header) and normalises the list (lower-case
names, one Content-Length) each time it is built: on `POST /signup` building it
cost about 5 % of all the work the h11 path does for a request. Yet an app
answers with the same few header sets over and over. So the app's header list is
checked and normalised once, by h11 itself (an `h11.Response` is built from it),
and h11's normalised form, its `Headers`, is remembered under the tuple of the
headers; the next response with the same headers is built straight from that
form, with the server's own lines (Date, Server, `--header`, `Connection:
close`), normalised by h11 once as well, appended to it. And since h11's events
are immutable, the last `h11.Response` built for a header set is kept with it and
sent again when the next response of that set has the same status, the same
server lines (the same Date: the lines are a new list each second) and the same
`Connection: close`: building even from a normalised form costs ~15k instructions.

Appending is what normalising the whole list would give, because h11 normalises
each header on its own except Content-Length and Transfer-Encoding, which it
checks across the list: so the server's lines are trusted only when they hold
neither (`ServerLines.trusted`). h11's checks of the framing (conflicting
Content-Length values, Transfer-Encoding) and its whole state machine still run
on every response when it is sent. Anything else (a header set h11 refused, an
unhashable or `str` header, a status that is not a plain `int`, an h11 without
the private pieces used here) takes h11's full path, which is the reference: an
app header h11 refuses raises `h11.LocalProtocolError` there, as it always did.
"""

from __future__ import annotations

from typing import Any

import h11

from ._wire import date_header, reason

#: One header in h11's normalised form: (name as given, lower-case name, value).
Item = tuple[bytes, bytes, bytes]


class HeaderSet:
    """An app header set h11 accepted: its normalised form, and the last response built from it."""

    __slots__ = ("items", "last")

    def __init__(self, items: list[Item]) -> None:
        #: h11's normalised form of the set.
        self.items = items
        #: The last response built from it (None: none yet): (status, the server's lines
        #: it was built with (the list itself: a new Date makes a new list), close, the
        #: `h11.Response`). One tuple, replaced whole: servers on two threads of one
        #: process can never see the event of one response with the key of another.
        self.last: tuple[int, list[Item], bool, h11.Response] | None = None


#: Header sets h11 has seen: the tuple of their headers -> what h11 made of them, or None
#: if h11 refused them.
_CHECKED: dict[tuple[tuple[bytes, bytes], ...], HeaderSet | None] = {}
#: Distinct header sets remembered at most (per-response values, such as cookies or
#: ETags, would otherwise grow it without bound); past it, it starts over.
CHECKED_MAX = 512

#: What `_CHECKED` answers for a header set not seen yet.
_UNSEEN = HeaderSet([])

_Response = h11.Response
_CLOSE: Item = (b"connection", b"connection", b"close")


def _headers_class() -> Any:
    """h11's `Headers` (private), if this h11 builds responses from it as this module expects."""
    try:
        from h11._headers import Headers
    except ImportError:  # pragma: no cover - another h11
        return None
    pairs = [(b"Content-Length", b"1"), (b"x-a", b"b")]
    try:
        built = _Response(status_code=200, headers=pairs, reason=b"OK")
        items = list(built.headers._full_items)
        again = _Response(status_code=200, headers=Headers(items), reason=b"OK", _parsed=True)
    except (AttributeError, TypeError):  # pragma: no cover - another h11
        return None
    if items != [(b"Content-Length", b"content-length", b"1"), (b"x-a", b"x-a", b"b")]:
        return None  # pragma: no cover - another h11
    if list(again.headers) != list(built.headers):
        return None  # pragma: no cover - another h11
    return Headers


#: h11's `Headers`, or None: every response takes h11's full path, as before this module.
_Headers = _headers_class()


def normalised(headers: list[tuple[bytes, bytes]]) -> list[Item] | None:
    """h11's normalised form of this exact header list, or None if h11 refuses it.

    Checked by h11 the first time a list is seen, then remembered.
    """
    known = header_set(headers)
    return None if known is None else known.items


def header_set(headers: list[tuple[bytes, bytes]]) -> HeaderSet | None:
    """What h11 made of this exact header list (None: h11 refuses it, or it cannot be a key)."""
    try:
        key = tuple(headers)
        found = _CHECKED.get(key, _UNSEEN)
    except TypeError:  # an unhashable header (a list, a bytearray): the full path
        return None
    if found is not _UNSEEN:
        return found
    known: HeaderSet | None = None
    if _Headers is not None and all(
        type(pair) is tuple and len(pair) == 2 and type(pair[0]) is bytes and type(pair[1]) is bytes
        for pair in key
    ):
        try:
            known = HeaderSet(
                list(_Response(status_code=200, headers=list(key)).headers._full_items)
            )
        except h11.LocalProtocolError:
            known = None
    if len(_CHECKED) >= CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[key] = known
    return known


class ServerLines:
    """The lines the server adds to every response: Date (if on) and its default headers.

    `trusted`: h11 accepted them, normalised (`items`), and they can be appended
    to any app header set (see the module docstring); if not, each response is
    built the full way (`response_event`).
    """

    __slots__ = ("date", "pairs", "items", "trusted", "_dated")

    def __init__(self, default_headers: list[tuple[bytes, bytes]], date: bool) -> None:
        self.date = date
        self.pairs = list(default_headers)
        sample = [
            (b"date", b"Mon, 30 Nov 2026 12:00:00 GMT"),
            *self.pairs,
            (b"connection", b"close"),
        ]
        checked = normalised(sample)
        framing = any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.pairs
        )
        self.trusted = checked is not None and not framing
        #: The default headers in h11's form (the sample's without its Date and close).
        self.items: list[Item] = checked[1:-1] if checked is not None else []
        #: The Date value and `items` behind its line (rebuilt when the Date changes; one
        #: tuple, replaced whole, as `HeaderSet.last`).
        self._dated: tuple[bytes, list[Item]] = (b"", self.items)

    def current(self) -> list[Item]:
        """The lines in h11's form, with the current Date (the same list within a second)."""
        if not self.date:
            return self.items
        value = date_header()
        dated = self._dated
        if dated[0] is not value:
            dated = self._dated = (value, [(b"date", b"date", value), *self.items])
        return dated[1]


_LINES: dict[tuple[tuple[tuple[bytes, bytes], ...], bool], ServerLines] = {}


def server_lines(default_headers: list[tuple[bytes, bytes]], date: bool) -> ServerLines:
    """The `ServerLines` for these default headers (made once: a server's connections share it)."""
    key = (tuple(default_headers), date)
    lines = _LINES.get(key)
    if lines is None:
        lines = _LINES[key] = ServerLines(default_headers, date)
    return lines


def response_event(
    status: int, headers: list[tuple[bytes, bytes]], lines: ServerLines, close: bool
) -> h11.Response:
    """The `h11.Response` for the app's `headers` followed by the server's `lines`.

    With `close`, a `Connection: close` line ends it. `headers` is the app's
    list; on h11's full path the server's lines are appended to it.
    """
    if lines.trusted and type(status) is int:
        known = header_set(headers)
        if known is not None:
            tail = lines.current()
            last = known.last
            if last is not None and last[1] is tail and last[0] == status and last[2] is close:
                return last[3]  # the same response as the last one (h11's events are immutable)
            items = known.items + tail
            if close:
                items.append(_CLOSE)
            event = _Response(
                status_code=status, headers=_Headers(items), reason=reason(status), _parsed=True
            )
            known.last = (status, tail, close, event)
            return event
    if lines.date:
        headers.append((b"date", date_header()))
    if lines.pairs:
        headers += lines.pairs
    if close:
        headers.append((b"connection", b"close"))
    return _Response(status_code=status, headers=headers, reason=reason(status))
