"""Bad requests against the built-in server: a table-driven corpus and a bounded fuzz test.

The corpus lives in `tests/adapters/invalid/`: `NNN.http` is one raw request
and `NNN.status` the status it must get (the connection must then close).
In a `.http` file, lines starting with `#` are comments, real line breaks are
ignored (so each header can sit on its own line), escapes such as `\\r\\n`,
`\\t` and `\\xNN` give the bytes, and `{TEXT*N}` repeats TEXT N times. Add a
case by adding a pair of files.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapters.test_server_harness import Running, exchange_raw, get, serving, status_of

pytestmark = pytest.mark.server

CORPUS = Path(__file__).parent / "invalid"
_REPEAT = re.compile(r"\{(.+?)\*(\d+)\}")


def load_request(path: Path) -> bytes:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    text = _REPEAT.sub(lambda match: match.group(1) * int(match.group(2)), "".join(lines))
    data: bytes = codecs.escape_decode(text.encode("latin-1"))[0]  # type: ignore[attr-defined]
    return data


CASES = sorted(CORPUS.glob("*.http"))


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with serving(header_timeout=2, body_timeout=2) as running:
        yield running


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 20
    for case in CASES:
        assert case.with_suffix(".status").exists(), f"{case.name} has no .status file"


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
def test_invalid_request_gets_its_status_and_close(server: Running, case: Path) -> None:
    expected = int(case.with_suffix(".status").read_text())
    raw = exchange_raw(server, load_request(case))
    assert status_of(raw) == expected, raw[:300]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert b"Traceback" not in body and b"Error" not in body
    assert raw.count(b"HTTP/1.1 ") == 1  # nothing smuggled behind it is answered
    # ...and the server is still serving
    assert status_of(exchange_raw(server, get("/hello", "Connection: close"))) == 200


PREFIXES = [
    b"",
    b"GET /hello HTTP/1.1\r\n",
    b"GET /hello HTTP/1.1\r\nHost: t\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(prefix=st.sampled_from(PREFIXES), noise=st.binary(max_size=400))
def test_random_bytes_get_a_4xx_or_a_close_and_the_server_keeps_serving(
    server: Running, prefix: bytes, noise: bytes
) -> None:
    raw = exchange_raw(server, prefix + noise)
    status = status_of(raw)
    if status is not None:
        # Past a valid prefix the noise can make a valid request; otherwise a 4xx.
        assert status < 500 or status == 501, raw[:300]
        assert b"Traceback" not in raw
    else:
        assert raw == b"", raw[:300]  # no half-written garbage either
    assert status_of(exchange_raw(server, get("/hello", "Connection: close"))) == 200
