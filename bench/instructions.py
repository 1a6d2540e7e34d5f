"""Instructions per request of a server configuration: a figure that noise does not move.

`python -m bench.instructions velocipy/own-server hello [--baseline bare-asgi/uvicorn-h11]`
starts the configuration's server under `valgrind --tool=callgrind`, sends a
fixed number of requests over 10 keep-alive connections, stops it, and does
it again with more requests; the difference in instructions executed by the
server process, divided by the difference in requests, is its cost per
request with start-up and shutdown taken out. Callgrind counts instructions,
not time, so the figure repeats whatever else the machine is doing, which
makes it the measure to compare changes with while others use the machine;
throughput itself still comes from `bench.run`. Valgrind slows the server
about fifty times: each measurement takes a minute or two.

Works for the single-process configurations started as `python -m ...` (our
own server, uvicorn), not gunicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.configs import BY_NAME, PY, SCENARIOS, Scenario
from bench.servers import ROOT, Server, free_port

#: Requests of the short and the long run; their difference is what is divided.
SHORT, LONG = 200, 1200
CONNECTIONS = 10


def request_bytes(scenario: Scenario) -> bytes:
    head = f"{scenario.method} {scenario.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n"
    if scenario.body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(scenario.body)}\r\n"
    return head.encode() + b"\r\n" + scenario.body


async def send_requests(
    port: int, scenario: Scenario, count: int, request: bytes | None = None
) -> None:
    """`count` requests over `CONNECTIONS` keep-alive connections, each answer read whole.

    `request` replaces the scenario's own bytes (a request with more headers).
    """
    if request is None:
        request = request_bytes(scenario)

    async def one_connection(requests: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(requests):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if match is None or not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response head: {head[:200]!r}")
            await reader.readexactly(int(match.group(1)))
        writer.close()

    await asyncio.gather(*(one_connection(count // CONNECTIONS) for _ in range(CONNECTIONS)))


def server_instructions(
    name: str,
    scenario: Scenario,
    requests: int,
    *,
    command: Callable[[int], list[str]] | None = None,
    request: bytes | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Instructions the server process of `name` executes while serving `requests`.

    `command(port)` starts a server that is not one of `bench.configs`' (then
    `name` only labels it); `request` replaces the scenario's request bytes; `env`
    is added to the server's environment.
    """
    port = free_port()
    argv = BY_NAME[name].command(port) if command is None else command(port)
    if argv[:2] != [PY, "-m"]:
        raise SystemExit(f"{name} is not started as `python -m ...`; cannot count it")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as folder:
        log = Path(folder) / "callgrind.log"
        server = Server(
            name,
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
             f"--log-file={log}", *argv],
            port,
        )  # fmt: skip
        # Hash randomisation changes dict layouts, and with them the count, run to run.
        server.env = {**(env or {}), "PYTHONHASHSEED": "0"}
        server.start()
        try:
            if not server.wait_ready(900):  # a loaded machine under valgrind can take minutes
                raise SystemExit(f"{name} did not start under valgrind: {server.problem}")
            asyncio.run(send_requests(port, scenario, requests, request))
        finally:
            assert server.process is not None
            os.killpg(server.process.pid, signal.SIGINT)
            try:
                server.process.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()
        deadline = time.monotonic() + 10
        while "Collected" not in (text := log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
    match = re.search(r"Collected : (\d+)", text)
    if match is None:
        raise SystemExit(f"callgrind reported no total for {name}:\n{text[-2000:]}")
    return int(match.group(1))


def per_request(name: str, scenario: Scenario) -> int:
    """Instructions per request of `name` on `scenario` (long run minus short run)."""
    short = server_instructions(name, scenario, SHORT)
    long = server_instructions(name, scenario, LONG)
    return (long - short) // (LONG - SHORT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(BY_NAME), metavar="CONFIG")
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--baseline", choices=sorted(BY_NAME), help="also count this one")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    os.chdir(ROOT)
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    ours = per_request(args.config, scenario)
    print(f"{args.config} {scenario.method} {scenario.path}: {ours:,} instructions/request")
    if args.baseline:
        theirs = per_request(args.baseline, scenario)
        print(f"{args.baseline} {scenario.method} {scenario.path}: {theirs:,} instructions/request")
        print(f"ratio {ours / theirs:.3f} (below 1: {args.config} does less work per request)")


if __name__ == "__main__":
    main()
