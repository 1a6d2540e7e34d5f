"""A bounded pure-Python HTTP/1.1 load generator: the fallback when `wrk` is not installed.

`python -m bench.pyload --port N --path /hello [--method POST --body JSON]
--connections 50 --duration 5 [--rate R | --requests N]` opens keep-alive
connections on raw asyncio sockets (uvloop when available), sends one request
at a time on each, and prints one JSON line: requests, errors, elapsed,
requests/s and latency percentiles. Closed loop by default; `--rate` paces the
requests (an open-ish loop at a load the server can sustain, for latency);
`--requests` stops after that many. `--warmup S` sends for S seconds more first,
on the same connections and schedule, and keeps none of it: a server reaches its
steady state (tasks in flight, say) before anything is recorded. `--samples`
adds every recorded latency to the JSON, so that runs can be pooled.

Its own ceiling is measured against `bench.ceiling` and stated in the results:
figures near that ceiling measure this generator, not the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

#: Latency samples kept at most (enough for stable p99s; bounds memory).
MAX_SAMPLES = 2_000_000


def build_request(method: str, path: str, host: str, body: bytes) -> bytes:
    """The raw bytes of one keep-alive request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "User-Agent: bench.pyload"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ResponseReader:
    """Splits a byte stream into complete HTTP/1.1 responses (content-length or chunked)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[int]:
        """Add bytes; return the status codes of the responses now complete."""
        self.buffer += data
        done: list[int] = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return done
            head = bytes(self.buffer[:end]).lower()
            status = int(head[9:12])
            start = end + 4
            length_at = head.find(b"\r\ncontent-length:")
            if length_at >= 0:
                value_end = head.find(b"\r\n", length_at + 2)
                value = head[length_at + 17 : value_end if value_end >= 0 else len(head)]
                total = start + int(value.strip())
                if len(self.buffer) < total:
                    return done
            elif b"\r\ntransfer-encoding: chunked" in head:
                total = self._chunked_end(start)
                if total < 0:
                    return done
            else:
                total = start
            del self.buffer[:total]
            done.append(status)

    def _chunked_end(self, position: int) -> int:
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return -1
            size = int(bytes(self.buffer[position:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n\r\n", line_end)
                if trailer_end >= 0 and trailer_end == line_end:
                    return line_end + 4
                if trailer_end < 0:
                    return -1
                return trailer_end + 4
            position = line_end + 2 + size + 2
            if position > len(self.buffer):
                return -1


class Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, wait for its response, repeat."""

    def __init__(self, generator: LoadGenerator) -> None:
        self.generator = generator
        self.reader = ResponseReader()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        statuses = self.reader.feed(data)
        if statuses and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(statuses[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def roundtrip(self, payload: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


class LoadGenerator:
    """Runs `connections` workers against one endpoint and collects counts and latencies."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.payload = build_request(
            args.method, args.path, f"127.0.0.1:{args.port}", args.body.encode()
        )
        self.latencies: list[float] = []
        self.requests = 0
        self.errors = 0
        self.non_2xx = 0
        self.deadline = 0.0
        #: Requests sent before this moment are not recorded (`--warmup`).
        self.recording_from = 0.0
        self.remaining = args.requests or -1

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: Connection(self), "127.0.0.1", self.args.port
        )
        return protocol

    def _take(self) -> bool:
        if self.remaining == 0:
            return False
        if self.remaining > 0:
            self.remaining -= 1
        return True

    async def worker(self, index: int, start: float) -> None:
        connection = await self._connect()
        rate = self.args.rate
        interval = self.args.connections / rate if rate else 0.0
        scheduled = start + (index / rate if rate else 0.0)
        clock = time.perf_counter
        while clock() < self.deadline and self._take():
            if rate:
                delay = scheduled - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                scheduled += interval
            began = clock()
            try:
                if connection.lost:
                    connection = await self._connect()
                status = await connection.roundtrip(self.payload)
            except (OSError, ConnectionError):
                self.errors += 1
                await asyncio.sleep(0.01)
                continue
            finished = clock()
            if began < self.recording_from:
                continue
            self.requests += 1
            if not 200 <= status < 300:
                self.non_2xx += 1
            if len(self.latencies) < MAX_SAMPLES:
                self.latencies.append(finished - began)
        if connection.transport is not None:
            connection.transport.close()

    async def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.recording_from = start + self.args.warmup
        self.deadline = self.recording_from + self.args.duration
        await asyncio.gather(*(self.worker(i, start) for i in range(self.args.connections)))
        elapsed = time.perf_counter() - self.recording_from
        found = summarize(self.requests, self.errors, self.non_2xx, elapsed, self.latencies)
        if self.args.samples:
            found["samples_ms"] = [round(latency * 1000, 4) for latency in self.latencies]
        return found


def summarize(
    requests: int, errors: int, non_2xx: int, elapsed: float, latencies: list[float]
) -> dict[str, Any]:
    """The JSON line this tool prints (latencies in milliseconds)."""
    ordered = sorted(latencies)

    def percentile(fraction: float) -> float | None:
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000

    return {
        "requests": requests,
        "errors": errors,
        "non_2xx": non_2xx,
        "elapsed": elapsed,
        "rps": requests / elapsed if elapsed else 0.0,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": ordered[-1] * 1000 if ordered else None,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (an upper bound)")
    parser.add_argument("--rate", type=float, default=0.0, help="total requests/s (0: closed loop)")
    parser.add_argument("--requests", type=int, default=0, help="stop after this many (0: no cap)")
    parser.add_argument(
        "--warmup", type=float, default=0.0, help="seconds of load first, not recorded"
    )
    parser.add_argument(
        "--samples", action="store_true", help="every latency too (ms), to pool several runs"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(LoadGenerator(args).run())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
