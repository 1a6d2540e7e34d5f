"""Response heads on the h11 path: a header set h11 checked once answers as h11's full check.

`_h11_response` remembers h11's normalised form of the header sets it accepted
and then builds their `h11.Response` from it, with the server's own lines
appended. Whatever it sends must be byte for byte what h11's full path sends,
and whatever h11 refuses must still be refused, the first time and every time
after, whatever the server's lines.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest

from velocipy.server import _h11_response
from velocipy.server._h11_response import ServerLines, normalised, response_event
from velocipy.server._wire import reason

DATE = b"Mon, 30 Nov 2026 12:00:00 GMT"
SERVER_LINES = [(b"server", b"velocipy")]

HEADER_SETS: list[list[Any]] = [
    [(b"content-type", b"application/json"), (b"content-length", b"5")],
    [(b"Content-Length", b"5"), (b"X-Thing", b"a: b")],
    [(b"content-type", b"text/plain")],
    [],
    [(b"content-length", b"5"), (b"content-length", b"5")],
    [(b"content-length", b"5"), (b"x-bytes", bytearray(b"v"))],
    [("content-length", "5")],  # str: h11 converts them on its full path
    # Refused by h11's grammar or framing rules: both paths must raise.
    [(b"bad name", b"v")],
    [(b"", b"v")],
    [(b"x-split", b"a\r\nset-cookie: b")],
    [(b"x-nul", b"a\x00")],
    [(b"x-control", b"a\x01b")],  # accepted by h11 (not by the httptools path's check)
    [(b"x-trailing", b"a ")],  # h11 is stricter than CR, LF and NUL here
    [(b"x-leading", b" a")],
    [(b"content-length", b"-1")],
    [(b"content-length", b"5"), (b"content-length", b"6")],
    # With a Content-Length h11 frames the body without rebuilding the header list,
    # so nothing after `response_event` would check these again.
    [(b"content-length", b"5"), (b"bad name", b"v")],
    [(b"content-length", b"5"), (b"x-split", b"a\r\nset-cookie: b")],
    [(b"content-length", b"5"), (b"x-trailing", b"a ")],
    [(b"transfer-encoding", b"gzip")],
]


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    _h11_response._CHECKED.clear()
    # A fixed Date, so the reference and the shortcut can be compared byte for byte.
    monkeypatch.setattr(_h11_response, "date_header", lambda: DATE)


def reference(status: Any, headers: list[Any], lines: list[Any], close: bool) -> Any:
    """The bytes h11's own full path sends for the whole list, or the error class."""
    whole = [*headers, (b"date", DATE), *lines]
    if close:
        whole.append((b"connection", b"close"))
    return sent(lambda: h11.Response(status_code=status, headers=whole, reason=reason(status)))


def shortcut(status: Any, headers: list[Any], lines: ServerLines, close: bool) -> Any:
    """The bytes the h11 connection sends for the same response, or the error class."""
    return sent(lambda: response_event(status, list(headers), lines, close))


def sent(make: Any) -> Any:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    try:
        return conn.send(make())
    except h11.LocalProtocolError:
        return h11.LocalProtocolError


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
@pytest.mark.parametrize("headers", HEADER_SETS, ids=range(len(HEADER_SETS)))
def test_a_checked_header_set_is_sent_as_h11_sends_it(headers: list[Any], close: bool) -> None:
    expected = reference(200, list(headers), SERVER_LINES, close)
    assert expected  # bytes or the error class, never nothing
    lines = ServerLines(SERVER_LINES, date=True)
    for _ in range(3):  # first seen, then remembered (and the event itself reused)
        assert shortcut(200, list(headers), lines, close) == expected


#: Default headers (`--header`) that cannot simply be appended to the app's normalised
#: set: framing headers h11 checks across the whole list, and ones h11 refuses.
ODD_SERVER_LINES: list[list[Any]] = [
    [(b"Content-Length", b"5")],
    [(b"content-length", b"7")],
    [(b"transfer-encoding", b"chunked")],
    [(b"X-Upper", b"v"), (b"server", b"velocipy")],
    [(b"x-extra", b"trailing ")],
]


@pytest.mark.parametrize("lines", ODD_SERVER_LINES, ids=range(len(ODD_SERVER_LINES)))
@pytest.mark.parametrize("headers", HEADER_SETS, ids=range(len(HEADER_SETS)))
def test_the_servers_own_lines_join_as_h11_would_join_them(
    headers: list[Any], lines: list[Any]
) -> None:
    expected = reference(200, list(headers), lines, False)
    server = ServerLines(lines, date=True)
    for _ in range(2):
        assert shortcut(200, list(headers), server, False) == expected


def test_framing_or_refused_server_lines_turn_the_shortcut_off() -> None:
    assert ServerLines([(b"server", b"velocipy")], date=True).trusted
    assert ServerLines([], date=False).trusted
    assert not ServerLines([(b"x-extra", b"trailing ")], date=True).trusted
    assert not ServerLines([(b"Content-Length", b"5")], date=True).trusted
    assert not ServerLines([(b"transfer-encoding", b"chunked")], date=True).trusted


def test_a_set_h11_refuses_is_never_trusted() -> None:
    bad = [(b"x-trailing", b"a ")]
    assert normalised(bad) is None
    assert normalised(bad) is None  # remembered as refused, not as accepted
    assert normalised([(b"x-fine", b"a b")]) == [(b"x-fine", b"x-fine", b"a b")]


def test_h11s_normal_form_is_what_is_remembered() -> None:
    assert normalised([(b"Content-Length", b"5, 5"), (b"content-length", b"5")]) == [
        (b"Content-Length", b"content-length", b"5")
    ]


def test_the_cache_of_header_sets_is_bounded() -> None:
    for n in range(_h11_response.CHECKED_MAX + 10):
        assert normalised([(b"etag", b"%d" % n)]) is not None
    assert len(_h11_response._CHECKED) <= _h11_response.CHECKED_MAX


def test_a_status_that_is_not_a_plain_int_takes_the_full_path() -> None:
    from http import HTTPStatus

    server = ServerLines(SERVER_LINES, date=True)
    event = response_event(HTTPStatus.OK, [(b"content-length", b"0")], server, False)
    assert type(event.status_code) is int
    assert reference(HTTPStatus.OK, [(b"content-length", b"0")], SERVER_LINES, False) == shortcut(
        HTTPStatus.OK, [(b"content-length", b"0")], server, False
    )


def test_without_a_date_line_none_is_sent() -> None:
    server = ServerLines(SERVER_LINES, date=False)
    event = response_event(200, [(b"content-length", b"0")], server, False)
    assert [name for name, _ in event.headers] == [b"content-length", b"server"]


def test_the_date_line_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ServerLines(SERVER_LINES, date=True)
    first = response_event(200, [(b"content-length", b"0")], server, False)
    monkeypatch.setattr(_h11_response, "date_header", lambda: b"Tue, 01 Dec 2026 00:00:00 GMT")
    second = response_event(200, [(b"content-length", b"0")], server, False)
    assert dict(first.headers)[b"date"] == DATE
    assert dict(second.headers)[b"date"] == b"Tue, 01 Dec 2026 00:00:00 GMT"


def test_a_response_like_the_last_one_is_that_one_and_any_difference_makes_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = ServerLines(SERVER_LINES, date=True)
    other_lines = ServerLines([(b"server", b"other")], date=True)
    app = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    first = response_event(200, list(app), lines, False)
    assert response_event(200, list(app), lines, False) is first
    variants = [
        (201, lines, False),
        (200, lines, True),
        (200, other_lines, False),
    ]
    for status, server, close in variants:
        event = response_event(status, list(app), server, close)
        assert event is not first
        assert shortcut(status, app, server, close) == reference(status, app, server.pairs, close)
    monkeypatch.setattr(_h11_response, "date_header", lambda: b"Tue, 01 Dec 2026 00:00:00 GMT")
    later = response_event(200, list(app), lines, False)
    assert later is not first
    assert dict(later.headers)[b"date"] == b"Tue, 01 Dec 2026 00:00:00 GMT"
