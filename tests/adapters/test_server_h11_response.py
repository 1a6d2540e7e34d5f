"""Response heads on the h11 path: a header set h11 checked once answers as h11's full check.

`_h11_response` remembers the header sets h11 accepted and then builds their
`h11.Response` without re-checking each header. Whatever it sends must be byte
for byte what h11's full path sends, and whatever h11 refuses must still be
refused, the first time and every time after.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest

from velocipy.server import _h11_response
from velocipy.server._h11_response import checked, response_event, server_lines_checked

SERVER_LINES = [(b"date", b"Mon, 30 Nov 2026 12:00:00 GMT"), (b"server", b"velocipy")]

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
def empty_cache() -> None:
    _h11_response._CHECKED.clear()


def sent(status: int, headers: list[Any], trusted: bool | None) -> Any:
    """The bytes an h11 server connection sends for this response, or the error class.

    `trusted=None`: h11's own full path, the reference.
    """
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    whole = [*headers, *SERVER_LINES]
    try:
        if trusted is None:
            event = h11.Response(status_code=status, headers=whole, reason=b"OK")
        else:
            event = response_event(status, whole, trusted)
        return conn.send(event)
    except h11.LocalProtocolError:
        return h11.LocalProtocolError


@pytest.mark.parametrize("headers", HEADER_SETS, ids=range(len(HEADER_SETS)))
def test_a_checked_header_set_is_sent_as_h11_sends_it(headers: list[Any]) -> None:
    assert server_lines_checked([(b"server", b"velocipy")])
    expected = sent(200, list(headers), None)
    for _ in range(3):  # first seen, then remembered
        trusted = checked(list(headers))
        got = sent(200, list(headers), trusted)
        assert got == expected


def test_a_set_h11_refuses_is_never_trusted() -> None:
    bad = [(b"x-trailing", b"a ")]
    assert not checked(bad)
    assert not checked(bad)  # remembered as refused, not as accepted
    assert checked([(b"x-fine", b"a b")])


def test_server_lines_h11_refuses_turn_the_shortcut_off() -> None:
    assert not server_lines_checked([(b"x-extra", b"trailing ")])
    assert server_lines_checked([(b"x-extra", b"fine")])


def test_the_cache_of_header_sets_is_bounded() -> None:
    for n in range(_h11_response.CHECKED_MAX + 10):
        assert checked([(b"etag", b"%d" % n)])
    assert len(_h11_response._CHECKED) <= _h11_response.CHECKED_MAX


def test_a_status_that_is_not_a_plain_int_takes_the_full_path() -> None:
    from http import HTTPStatus

    event = response_event(HTTPStatus.OK, [(b"content-length", b"0")], True)
    assert type(event.status_code) is int
