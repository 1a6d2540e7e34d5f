"""Bad requests against the built-in server: a table-driven corpus and a bounded fuzz test.

The corpus lives in `tests/adapters/invalid/`: `NNN.http` is one raw request
and `NNN.status` the status it must get (the connection must then close).
In a `.http` file, lines starting with `#` are comments, real line breaks are
ignored (so each header can sit on its own line), escapes such as `\\r\\n`,
`\\t` and `\\xNN` give the bytes, and `{TEXT*N}` repeats TEXT N times. Add a
case by adding a pair of files. Every case and the fuzz test run against both
request parsers (h11 and httptools): the hardening must not depend on the parser.
"""

from __future__ import annotations

import codecs
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.adapters.test_server_harness import (
    PARSERS,
    Running,
    exchange_raw,
    get,
    serving,
    status_of,
)

pytestmark = pytest.mark.server

CORPUS = Path(__file__).parent / "invalid"
_REPEAT = re.compile(r"\{(.+?)\*(\d+)\}")


def load_request(path: Path) -> bytes:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    text = _REPEAT.sub(lambda match: match.group(1) * int(match.group(2)), "".join(lines))
    data: bytes = codecs.escape_decode(text.encode("latin-1"))[0]  # type: ignore[attr-defined]
    return data


CASES = sorted(CORPUS.glob("*.http"))


@pytest.fixture(scope="module", params=PARSERS)
def server(request: pytest.FixtureRequest) -> Iterator[Running]:
    """One server per request parser: every case must get the same answer from both."""
    with serving(header_timeout=2, body_timeout=2, http=request.param) as running:
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


# -- the two parsers against each other --------------------------------------------------------

#: Requests whose heads are mutated for the comparison below: the corpus and a few valid ones.
SEEDS = [load_request(case) for case in CASES] + [
    b"GET /hello?x=1 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
]
#: Bytes that tend to matter to a parser.
_ALPHABET = b'\x00\x01\t\r\n :;,/?%\x7f\x80\xff"<>{}|\\^`aZ0F-'


def mutate(seed: bytes, rng: random.Random) -> bytes:
    """`seed` with one to three bytes of its head inserted, deleted or replaced."""
    data = bytearray(seed)
    head_end = seed.find(b"\r\n\r\n")
    head_end = len(seed) if head_end < 0 else head_end + 4
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(head_end)
        choice = rng.random()
        if choice < 0.4:
            data[at:at] = bytes([rng.choice(_ALPHABET)])
            head_end += 1
        elif choice < 0.7 and head_end > 1:
            del data[at]
            head_end -= 1
        else:
            data[at] = rng.choice(_ALPHABET)
    return bytes(data)


@pytest.fixture(scope="module")
def both_parsers() -> Iterator[tuple[Running, Running]]:
    with serving(header_timeout=2, body_timeout=2, http="h11") as h11_server:
        with serving(header_timeout=2, body_timeout=2, http="httptools") as httptools_server:
            yield h11_server, httptools_server


@pytest.mark.parametrize("seed", range(6))
def test_both_parsers_answer_mutated_heads_alike(
    both_parsers: tuple[Running, Running], seed: int
) -> None:
    """Seeded mutations of the corpus: the same status (or none) and the same number of answers.

    Mutations stay within the head: past it, h11 waits for more bytes where llhttp
    refuses at once a few malformed chunk-size lines (both safe; see docs/server.md).
    """
    rng = random.Random(seed)
    h11_server, httptools_server = both_parsers
    for _ in range(40):
        data = mutate(rng.choice(SEEDS), rng)
        by_h11 = exchange_raw(h11_server, data)
        by_httptools = exchange_raw(httptools_server, data)
        assert (status_of(by_h11), by_h11.count(b"HTTP/1.1 ")) == (
            status_of(by_httptools),
            by_httptools.count(b"HTTP/1.1 "),
        ), data
