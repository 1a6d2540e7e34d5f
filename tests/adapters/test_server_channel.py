"""The built-in server's socket handling on every event loop it runs on: asyncio, uvloop, trio.

On asyncio and uvloop the server reads and writes through its own protocol on
the transport (`velocipy.server._channel.TransportChannel`), on trio through
anyio's stream; each test runs on all three, so the fast path and the portable
one must behave alike: flow control both ways, half-closed clients, bursts of
new connections, pipelining next to other clients.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import socket
import time
import uuid
from typing import Any

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
from velocipy.server._channel import (
    BATCHED_WRITE_LIMIT,
    READ_HIGH_WATER,
    TransportChannel,
    WriteBatch,
    open_channel,
)

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


# -- small responses of one turn of the loop, written together -----------------------------------

ASYNCIO_LOOPS = [loop for loop in LOOPS if loop != "trio"]


def _on_loop(loop: str, main: Any) -> Any:
    """Run `main()` on a fresh asyncio or uvloop event loop."""
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


async def _channel_pair(
    loop: asyncio.AbstractEventLoop,
) -> tuple[TransportChannel, socket.socket, WriteBatch]:
    """A channel on one end of a connected pair, the other end (non-blocking), the batch."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    writes = WriteBatch(loop)
    channel = await open_channel(ours, write_timeout=2.0, writes=writes)
    assert isinstance(channel, TransportChannel)
    return channel, theirs, writes


def _received(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 20)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_small_responses_of_one_turn_reach_the_socket_together_at_its_end(loop: str) -> None:
    async def main() -> None:
        channel, theirs, _ = await _channel_pair(asyncio.get_running_loop())
        other, other_theirs, _ = await _channel_pair(asyncio.get_running_loop())
        assert channel.write(b"first ") is False  # nothing left to flush: no await needed
        assert other.write(b"elsewhere") is False
        assert channel.write(b"second") is False  # pipelined: appended, in order
        # Still this turn: nothing has been handed to the kernel yet.
        assert _received(theirs) == b""
        assert _received(other_theirs) == b""
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert _received(theirs) == b"first second"
        assert _received(other_theirs) == b"elsewhere"
        for sock in (theirs, other_theirs):
            sock.close()
        await channel.aclose()
        await other.aclose()

    _on_loop(loop, main)


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_a_large_response_and_a_send_go_out_at_once_after_what_was_batched(loop: str) -> None:
    async def main() -> None:
        channel, theirs, _ = await _channel_pair(asyncio.get_running_loop())
        channel.write(b"small;")
        big = b"x" * (BATCHED_WRITE_LIMIT + 1)
        if channel.write(big):
            await channel.flush()
        await channel.send(b";sent")
        received = b""
        deadline = time.monotonic() + 2
        while len(received) < len(big) + 11 and time.monotonic() < deadline:
            received += _received(theirs)
            await asyncio.sleep(0.001)
        assert received == b"small;" + big + b";sent"
        theirs.close()
        await channel.aclose()

    _on_loop(loop, main)


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_a_batched_response_is_sent_before_its_connection_closes(loop: str) -> None:
    async def main() -> None:
        channel, theirs, _ = await _channel_pair(asyncio.get_running_loop())
        channel.write(b"the last response")
        await channel.aclose()  # in the same turn: the response must not be lost
        received = b""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                chunk = theirs.recv(1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            if not chunk:
                break  # closed, after the response
            received += chunk
        assert received == b"the last response"
        theirs.close()

    _on_loop(loop, main)


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_a_batched_response_to_a_peer_gone_meanwhile_is_dropped_quietly(loop: str) -> None:
    async def main() -> None:
        channel, theirs, writes = await _channel_pair(asyncio.get_running_loop())
        channel.write(b"for nobody")
        theirs.close()
        await asyncio.sleep(0.05)  # the flush runs; the loss is noticed; nothing raises
        writes.flush()  # and a second flush has nothing left to write
        await channel.aclose()

    _on_loop(loop, main)


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_a_close_cancelled_while_its_last_response_waits_still_closes_the_socket(loop: str) -> None:
    async def main() -> None:
        channel, theirs, _ = await _channel_pair(asyncio.get_running_loop())
        # Fill both kernel buffers (the peer reads nothing): the kernel takes no more.
        assert channel.write(b"f" * (1 << 22)) is True
        # The state a batched response is in when its connection closes in the same
        # turn and the kernel does not take it whole: `aclose` must wait for it...
        channel._unsent = b"the last response"
        closing = asyncio.ensure_future(channel.aclose())
        await asyncio.sleep(0.05)
        assert not closing.done()  # ...within the write timeout, for the peer to read
        closing.cancel()  # and, cancelled meanwhile, still close the socket
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert channel._transport.is_closing()
        theirs.close()

    _on_loop(loop, main)


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_a_batched_response_the_kernel_took_in_part_is_finished_before_a_later_close(
    loop: str,
) -> None:
    async def main() -> None:
        running_loop = asyncio.get_running_loop()
        channel, theirs, _ = await _channel_pair(running_loop)
        # A client that pipelines and reads nothing yet: small responses are batched
        # (and the connection goes idle after each) until the kernel stops taking one whole.
        response = b"r" * 16_000
        sent = 0
        for _ in range(10_000):
            assert channel.write(response) is False
            sent += len(response)
            await asyncio.sleep(0)
            await asyncio.sleep(0)  # the turn's flush has run
            if channel._writing_paused:
                break
        assert channel._writing_paused, "the kernel never filled up"

        def read_all() -> int:
            theirs.setblocking(True)
            theirs.settimeout(3)
            received = 0
            while True:
                try:
                    chunk = theirs.recv(1 << 16)
                except (ConnectionResetError, TimeoutError):
                    return received
                if not chunk:
                    return received
                received += len(chunk)

        # A later turn closes the idle connection (keep-alive expiry, a graceful stop)
        # while the client reads on: every byte of every response must arrive.
        reading = running_loop.run_in_executor(None, read_all)
        await channel.aclose()
        assert await reading == sent
        theirs.close()

    _on_loop(loop, main)


def test_channels_of_an_interrupted_flush_are_written_in_the_next_one() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        first, first_peer, writes = await _channel_pair(loop)
        second, second_peer, _ = await _channel_pair(loop)
        second._writes = writes  # two connections of one server share its batch

        def interrupted(data: bytes) -> None:
            raise KeyboardInterrupt

        first._transport.write = interrupted
        first.write(b"lost with the interrupted write")
        second.write(b"one,")
        with pytest.raises(KeyboardInterrupt):
            writes.flush()  # as the loop's callback at the end of the turn
        second.write(b"two")  # its next response, appended to what it still holds
        await asyncio.sleep(0.05)
        assert _received(second_peer) == b"one,two"
        first_peer.close()
        second_peer.close()

    asyncio.run(main())


@pytest.mark.parametrize("loop", ASYNCIO_LOOPS)
def test_what_waits_for_a_batched_response_runs_once_it_is_written(loop: str) -> None:
    async def main() -> None:
        channel, theirs, _ = await _channel_pair(asyncio.get_running_loop())
        seen: list[tuple[str, bool, bytes]] = []

        def then(name: str, delivered: bool) -> None:
            seen.append((name, delivered, _received(theirs)))

        assert channel.after_written(then, "nothing batched") is False
        channel.write(b"the response")
        assert channel.after_written(then, "the rest") is True
        assert seen == []  # not in this turn: the response is not written yet
        await asyncio.sleep(0.01)
        assert seen == [("the rest", True, b"the response")]
        # The connection lost before the end of the turn (the transport tells its
        # protocol so): told it was not delivered.
        channel.write(b"for nobody")
        channel.after_written(then, "too late")
        channel.connection_lost(ConnectionResetError())
        await asyncio.sleep(0.01)
        assert seen[1] == ("too late", False, b"")
        theirs.close()
        await channel.aclose()

    _on_loop(loop, main)
