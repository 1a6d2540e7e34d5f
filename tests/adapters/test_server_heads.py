"""Response heads on the httptools path: the cached plain path answers as the general one.

`_heads.response_head` remembers header sets it has checked (see its module
docstring). Whatever the cache answers must be byte for byte what the general
path (`frame` + `encode`, the h11 rules) answers, first time and every time after.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from velocipy.server import ServerConfig
from velocipy.server._server import _response_tail
from velocipy.server.protocols import _heads

HEADER_SETS: list[list[Any]] = [
    [(b"content-type", b"application/json"), (b"content-length", b"5")],
    [(b"Content-Length", b"5"), (b"X-Thing", b"a: b")],
    [(b"content-type", b"text/plain")],  # no length: chunked, or until close
    [],
    [(b"content-length", b"5"), (b"content-length", b"5")],
    [(b"transfer-encoding", b"chunked")],
    [(b"content-length", b"5"), (b"connection", b"keep-alive")],
    [(b"content-length", b"0")],
    [(b"content-length", b"5"), (b"x-bytes", bytearray(b"v"))],
    # Invalid: both paths refuse them.
    [(b"bad name", b"v")],
    [(b"", b"v")],
    [(b"x-split", b"a\r\nset-cookie: b")],
    [(b"x-nul", b"a\x00")],
    [(b"content-length", b"-1")],
]


class FakeServer:
    def __init__(self, tail: bool) -> None:
        self.date_header = True
        self.default_headers = [(b"server", b"velocipy"), (b"x-extra", b"1")]
        self.response_tail = _response_tail(self.default_headers, True) if tail else None


@pytest.fixture(autouse=True)
def fixed_date(monkeypatch: pytest.MonkeyPatch) -> None:
    date = b"Mon, 30 Nov 2026 12:00:00 GMT"
    monkeypatch.setattr(_heads, "date_header", lambda: date)
    # The cached tail reads the clock itself and asks `date_for` once a second.
    monkeypatch.setattr(_heads, "date_for", lambda now: (date, now - 60, now + 60))
    _heads._PLAIN.clear()


def answer(*args: Any) -> Any:
    """What `response_head(*args)` returns, or ValueError if it raises that."""
    try:
        return _heads.response_head(*args)
    except ValueError:
        return ValueError


@pytest.mark.parametrize("headers", HEADER_SETS, ids=range(len(HEADER_SETS)))
def test_the_cached_path_answers_as_the_general_one(headers: list[Any]) -> None:
    fast, reference = FakeServer(True), FakeServer(False)
    statuses = (200, 201, 204, 304, 101, 404)
    for case in itertools.product(statuses, (False, True), (b"1.1", b"1.0"), (False, True)):
        status, is_head, version, close = case
        expected = answer(status, list(headers), is_head, version, close, reference)
        for _ in range(2):  # first seen, then from the cache
            got = answer(status, list(headers), is_head, version, close, fast)
            assert got == expected, case


def test_a_plain_header_set_is_checked_once_then_looked_up() -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"5")]
    server: Any = FakeServer(True)
    _heads.response_head(200, list(headers), False, b"1.1", False, server)
    assert _heads._PLAIN == {
        tuple(headers): (b"content-type: application/json\r\ncontent-length: 5\r\n", 5)
    }
    head, framing, declared, close = _heads.response_head(
        200, list(headers), False, b"1.1", False, server
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n"
        b"date: Mon, 30 Nov 2026 12:00:00 GMT\r\nserver: velocipy\r\nx-extra: 1\r\n\r\n"
    )
    assert (framing, declared, close) == (_heads.LENGTH, 5, False)


def test_the_cache_of_header_sets_is_bounded() -> None:
    server: Any = FakeServer(True)
    for n in range(_heads.PLAIN_MAX * 2 + 3):
        _heads.response_head(200, [(b"etag", b"%d" % n)], False, b"1.1", False, server)
    assert 0 < len(_heads._PLAIN) <= _heads.PLAIN_MAX


@pytest.mark.parametrize(
    "extra", [("content-length", "5"), ("transfer-encoding", "chunked"), ("connection", "close")]
)
def test_server_headers_that_frame_the_body_take_the_general_path(extra: tuple[str, str]) -> None:
    from velocipy import VelociPy
    from velocipy.server import Server

    server = Server(VelociPy(), ServerConfig(headers=(extra,)))
    assert server.response_tail is None
    assert Server(VelociPy(), ServerConfig(headers=(("x-a", "b"),))).response_tail is not None


def test_an_app_asking_to_close_gets_the_connection_closed() -> None:
    server: Any = FakeServer(True)
    headers = [(b"content-length", b"0"), (b"Connection", b"Close")]
    head, _, _, close = _heads.response_head(200, headers, False, b"1.1", False, server)
    assert close
    assert head.endswith(b"\r\nconnection: close\r\n\r\n")
    assert head.lower().count(b"connection:") == 1
    keep = [(b"content-length", b"0"), (b"connection", b"keep-alive")]
    assert not _heads.response_head(200, keep, False, b"1.1", False, server)[3]


def test_the_date_line_follows_the_clock_second_by_second(monkeypatch: pytest.MonkeyPatch) -> None:
    from email.utils import formatdate

    from velocipy.server import _wire

    monkeypatch.setattr(_heads, "date_for", _wire.date_for)  # the real one, not the fixture's
    now = [1_700_000_000.25]
    monkeypatch.setattr(_heads, "_time", lambda: now[0])
    tail = _heads.ResponseTail([(b"server", b"velocipy")], date=True)

    def expected(second: int) -> bytes:
        return b"date: %s\r\nserver: velocipy\r\n" % formatdate(second, usegmt=True).encode()

    first = tail.lines()
    assert first == expected(1_700_000_000)
    now[0] = 1_700_000_000.99
    assert tail.lines() is first  # the same second: the lines already made
    now[0] = 1_700_000_001.0
    assert tail.lines() == expected(1_700_000_001)
    now[0] = 1_699_999_990.5  # the clock set back: a fresh value at once
    assert tail.lines() == expected(1_699_999_990)
    assert _heads.ResponseTail([(b"server", b"v")], date=False).lines() == b"server: v\r\n"
