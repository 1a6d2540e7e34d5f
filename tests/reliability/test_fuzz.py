"""A seeded fuzz run of mutated requests against the built-in server (issue 17).

Valid requests (plain, with bodies, chunked, pipelined) are mutated byte by
byte and field by field with a fixed seed, and sent to a real `velocipy run`
subprocess. Every case must be answered with a valid HTTP status below 500 or
closed; afterwards the server log holds no traceback and the process holds
the file descriptors it held before the run. (The one 5xx allowed is 501 for a
`Transfer-Encoding` the server does not implement, as RFC 9112 asks and
docs/server.md lists.) The default run sends a few
hundred cases; the slow one thousands, with other seeds.
"""

from __future__ import annotations

import os
import random
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.servers import PYTHON, ServerProcess, free_port, run_server
from velocipy.server._hardening import KNOWN_METHODS

pytestmark = pytest.mark.server

TARGET = "tests.adapters.test_server_harness:app"

SEEDS: list[bytes] = [
    b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /order/k/n?x=1&y=%20 HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
    b"POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
    b"Expect: 100-continue\r\n\r\nabc",
    b"GET /hello HTTP/1.0\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
    b"GET /sync HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n",
]

#: Bytes that mean something to an HTTP parser.
SPECIAL = [b"\r\n", b"\n", b"\r", b"\x00", b" ", b":", b"\t", b";", b"%", b"\xff", b"0", b"-1"]
HEADER_INJECTIONS = [
    b"Content-Length: 99999999999999999999\r\n",
    b"Content-Length: -1\r\n",
    b"Content-Length: 3\r\nContent-Length: 4\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Transfer-Encoding: identity\r\n",
    b"Host: a\r\nHost: b\r\n",
    b" folded\r\n",
    b"X-Long: " + b"a" * 20_000 + b"\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: upgrade\r\nUpgrade: websocket\r\n",
]


VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.12", b"http/1.1"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random edits of `data`."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        at = rng.randrange(len(buffer) + 1)
        if kind == 0 and buffer:  # flip a byte
            buffer[min(at, len(buffer) - 1)] = rng.randrange(256)
        elif kind == 1:  # insert a meaningful byte sequence
            buffer[at:at] = rng.choice(SPECIAL)
        elif kind == 2 and buffer:  # delete a run
            del buffer[at : at + rng.randint(1, 8)]
        elif kind == 3:  # truncate
            del buffer[at:]
        elif kind == 4:  # duplicate a run
            piece = buffer[at : at + rng.randint(1, 40)]
            buffer[at:at] = piece
        elif kind == 5:  # inject a header after the request line
            line_end = buffer.find(b"\r\n")
            if line_end >= 0:
                buffer[line_end + 2 : line_end + 2] = rng.choice(HEADER_INJECTIONS)
        elif kind == 6:  # random bytes
            buffer[at:at] = rng.randbytes(rng.randint(1, 16))
        else:  # another method or version
            buffer = bytearray(
                re.sub(
                    rb"^\S+ (\S+) HTTP/\d\.\d",
                    rng.choice([b"PUT", b"BREW", b"G\x00T", b"get", b"POST"])
                    + rb" \1 "
                    + rng.choice(VERSIONS),
                    bytes(buffer),
                    count=1,
                )
            )
    return bytes(buffer)


def cases(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(rng, rng.choice(SEEDS))


STATUS_LINE = re.compile(rb"^HTTP/1\.1 ([1-5]\d\d) ")


def send(port: int, data: bytes) -> bytes:
    """Send one case, half-close, and read until the server closes (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server refused and closed while we were still sending
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"no answer and no close within 5 s for {data[:200]!r}") from None
        return received


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def check(answer: bytes, case: bytes) -> None:
    if not answer:
        return  # closed without an answer: allowed
    match = STATUS_LINE.match(answer)
    assert match, f"not an HTTP response: {answer[:200]!r} for {case[:200]!r}"
    status = int(match.group(1))
    if refused_by_rule(status, case):
        return
    assert status < 500, f"{status} for {case[:200]!r}:\n{answer[:500]!r}"
    for later in re.finditer(rb"\r\n\r\n(HTTP/1\.1 (\d\d\d) )", answer):
        code = int(later.group(2))
        assert code < 500 or refused_by_rule(code, case), f"a later {code} for {case[:200]!r}"


REQUEST_LINE = re.compile(rb"(?:^|\n)([^\s]+) [^\s]+ HTTP/(\d)")


def refused_by_rule(status: int, case: bytes) -> bool:
    """A 5xx that is the RFC's answer to the request, not a failure of the server.

    501 for a transfer coding or a method the server does not implement (RFC 9110
    §9.1), 505 for an HTTP major version it does not serve.
    """
    if status == 501:
        if b"transfer-encoding" in case.lower():
            return True
        return any(m.group(1) not in KNOWN_METHODS for m in REQUEST_LINE.finditer(case))
    if status == 505:
        return any(m.group(2) >= b"2" for m in REQUEST_LINE.finditer(case))
    return False


def fuzz(seed: int, count: int) -> None:
    port = free_port()
    argv = [
        PYTHON, "-m", "velocipy", "run", TARGET, "--port", str(port), "--no-access-log",
        "--header-timeout", "1", "--body-timeout", "1", "--keepalive-timeout", "1",
    ]  # fmt: skip
    with run_server(argv, port=port) as server:
        send(port, SEEDS[0])  # warm: imports, first request
        baseline = open_fds(server.process.pid)
        with ThreadPoolExecutor(8) as pool:
            batch = list(cases(seed, count))
            answers = list(pool.map(lambda case: send(port, case), batch))
            for case, answer in zip(batch, answers, strict=True):
                check(answer, case)
        assert_fds_back(server, baseline)
        logs = server.logs()
    assert "Traceback" not in logs, logs[-5000:]
    assert " 5" not in "".join(line for line in logs.splitlines() if "ERROR" in line), logs[-5000:]


def assert_fds_back(server: ServerProcess, baseline: int) -> None:
    import time

    deadline = time.monotonic() + 5
    while open_fds(server.process.pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds(server.process.pid) <= baseline, (
        f"{open_fds(server.process.pid)} fds open, {baseline} before the run"
    )


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds in /proc")
def test_mutated_requests_are_answered_or_closed_and_leave_nothing_behind() -> None:
    fuzz(seed=17, count=300)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="counts fds in /proc")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_mutated_requests(seed: int) -> None:
    fuzz(seed=seed, count=3000)
