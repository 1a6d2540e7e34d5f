"""The built-in server's socket handling on every event loop it runs on: asyncio, uvloop, trio.

On asyncio and uvloop the server reads and writes through its own protocol on
the transport (`velocipy.server._channel.TransportChannel`), on trio through
anyio's stream; each test runs on all three, so the fast path and the portable
one must behave alike: flow control both ways, half-closed clients, bursts of
new connections, pipelining next to other clients.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import json
import socket
import time
import uuid

import pytest

from tests.adapters.test_server_harness import (
    BIG_CHUNK,
    BIG_CHUNKS,
    EVENTS,
    Reader,
    Running,
    get,
    post,
    serving,
)
from velocipy.server._channel import READ_HIGH_WATER

pytestmark = pytest.mark.server

LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed"
        ),
    ),
    "trio",
]


@pytest.fixture(params=LOOPS)
def running(request: pytest.FixtureRequest) -> Running:
    with serving(loop=request.param, max_body_size=8 * 1024 * 1024) as server:
        yield server  # type: ignore[misc]


def test_a_body_larger_than_the_read_buffer_arrives_whole(running: Running) -> None:
    # Four times the point where reading pauses: reading must resume as the app reads.
    body = bytes(range(256)) * (4 * READ_HIGH_WATER // 256)
    with running.connect() as sock:
        sock.sendall(post("/echo", body))
        reply = Reader(sock).response()
    assert reply.status == 200
    assert json.loads(reply.body)["length"] == len(body)


def test_a_slow_reader_gets_every_byte_of_a_large_response(running: Running) -> None:
    with running.connect(timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(get("/big") + get("/hello"))
        time.sleep(0.3)  # let the server fill the socket buffers and wait on them
        reader = Reader(sock)
        reply = reader.response()
        assert len(reply.body) == BIG_CHUNK * BIG_CHUNKS
        for index in range(BIG_CHUNKS):
            chunk = reply.body[index * BIG_CHUNK : (index + 1) * BIG_CHUNK]
            assert chunk == bytes([65 + index % 26]) * BIG_CHUNK
        assert reader.response().body == b'{"message":"hello"}'


def test_a_client_that_half_closes_after_its_request_still_gets_the_response(
    running: Running,
) -> None:
    with running.connect() as sock:
        sock.sendall(get("/hello"))
        sock.shutdown(socket.SHUT_WR)
        reader = Reader(sock)
        assert reader.response().body == b'{"message":"hello"}'
        assert reader.closed()


def test_a_burst_of_new_connections_is_served(running: Running) -> None:
    def one(_: int) -> int:
        with running.connect() as sock:
            sock.sendall(get("/hello", "Connection: close"))
            return Reader(sock).response().status

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(one, range(200)))
    assert statuses == [200] * 200


def test_a_pipelining_client_does_not_shut_out_another(running: Running) -> None:
    # Checked by the order in which the app sees the requests, not by the clock: a
    # burst of tiny responses on loopback can lose a packet and a retransmission
    # then delays a client by 200 ms whatever the server did. Enough greedy requests
    # that such a delay (the server serves ~4,000 a second here; CI once saw the
    # polite one after 846 of 1,000) stays well inside half of them, while a server
    # that serves a pipeline to its end first still puts the polite one last.
    count = 4000
    key = uuid.uuid4().hex
    with running.connect(timeout=10) as greedy, running.connect() as polite:
        greedy.sendall(get(f"/order/{key}/greedy") * count)
        polite.sendall(get(f"/order/{key}/polite"))
        assert Reader(polite).response().status == 200
        reader = Reader(greedy)
        for _ in range(count):
            assert reader.response().status == 200
    seen = EVENTS.pop(key)
    assert len(seen) == count + 1
    # Served in turn with the greedy one, not after everything it had sent.
    assert seen.index("polite") < count // 2


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_that_stops_reading_is_dropped_after_the_body_timeout(loop: str) -> None:
    with serving(loop=loop, body_timeout=0.5) as running, running.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # 32 MiB, more than the kernel buffers on both sides; this client reads none of it.
        sock.sendall(get("/big?chunks=512"))
        deadline = time.monotonic() + 4
        while not running.server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running.server.connections, "the connection was never accepted"
        started = time.monotonic()
        while running.server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running.server.connections
        assert time.monotonic() - started >= 0.4  # dropped for stalling, not for the request
