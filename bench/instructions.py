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


def serve_counted(
    server: Server,
    start_within: float,
    how: str,
    scenario: Scenario,
    requests: int,
    request: bytes | None = None,
) -> None:
    """Start `server` (counted `how`), send it `requests`, then stop it with SIGINT so that
    it writes what it counted (SIGKILL if it does not stop within two minutes)."""
    server.start()
    try:
        if not server.wait_ready(start_within):
            raise SystemExit(f"{server.name} did not start {how}: {server.problem}")
        asyncio.run(send_requests(server.port, scenario, requests, request))
    finally:
        assert server.process is not None
        os.killpg(server.process.pid, signal.SIGINT)
        try:
            server.process.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def server_instructions(
    name: str,
    scenario: Scenario,
    requests: int,
    *,
    command: Callable[[int], list[str]] | None = None,
    request: bytes | None = None,
    env: dict[str, str] | None = None,
    entries: list[int] | None = None,
) -> int:
    """Instructions the server process of `name` executes while serving `requests`.

    `command(port)` starts a server that is not one of `bench.configs`' (then
    `name` only labels it); `request` replaces the scenario's request bytes; `env`
    is added to the server's environment. With `entries`, the number of times the
    interpreter's loop was entered from C is appended to it (see `interpreter_entries`).
    """
    port = free_port()
    argv = BY_NAME[name].command(port) if command is None else command(port)
    if argv[:2] != [PY, "-m"]:
        raise SystemExit(f"{name} is not started as `python -m ...`; cannot count it")
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as folder:
        log = Path(folder) / "callgrind.log"
        out = Path(folder) / "callgrind.out" if entries is not None else Path("/dev/null")
        server = Server(
            name,
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             f"--log-file={log}", *argv],
            port,
        )  # fmt: skip
        # Hash randomisation changes dict layouts, and with them the count, run to run.
        server.env = {**(env or {}), "PYTHONHASHSEED": "0"}
        # A loaded machine under valgrind can take minutes to start it.
        serve_counted(server, 900, "under valgrind", scenario, requests, request)
        deadline = time.monotonic() + 10
        while "Collected" not in (text := log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if entries is not None:
            entries.append(interpreter_entries(out))
    match = re.search(r"Collected : (\d+)", text)
    if match is None:
        raise SystemExit(f"callgrind reported no total for {name}:\n{text[-2000:]}")
    return int(match.group(1))


#: A function's line in a callgrind profile: `fn=(12) name` the first time, `fn=(12)` after.
_FUNCTION = re.compile(r"c?fn=\((\d+)\)(?: (\S+))?")


def interpreter_entries(path: Path) -> int:
    """How many times a callgrind profile entered the interpreter's loop from C.

    On CPython 3.11 a Python function called by Python code runs in the same loop,
    but resuming a generator or coroutine, a class's `__init__` run by
    `type.__call__`, and any callback from C code each enter it anew: costlier in
    time than the instructions they add, so worth counting on their own.
    """
    loop: set[str] = set()  # the loop's numbers in this profile (one per recursion depth)
    total = 0
    pending = False
    with path.open(errors="replace") as profile:
        for line in profile:
            if line.startswith(("fn=", "cfn=")):
                match = _FUNCTION.match(line)
                if match is None:
                    continue
                number, name = match.groups()
                if name is not None and name.split("'")[0] == "_PyEval_EvalFrameDefault":
                    loop.add(number)
                pending = line.startswith("cfn=") and number in loop
            elif pending and line.startswith("calls="):
                total += int(line[6:].split()[0])
                pending = False
    return total


def per_request(name: str, scenario: Scenario) -> int:
    """Instructions per request of `name` on `scenario` (long run minus short run)."""
    short = server_instructions(name, scenario, SHORT)
    long = server_instructions(name, scenario, LONG)
    return (long - short) // (LONG - SHORT)


def entries_per_request(name: str, scenario: Scenario) -> tuple[int, float]:
    """Instructions and interpreter entries from C per request (long run minus short run)."""
    counted: list[int] = []
    short = server_instructions(name, scenario, SHORT, entries=counted)
    long = server_instructions(name, scenario, LONG, entries=counted)
    return (long - short) // (LONG - SHORT), (counted[1] - counted[0]) / (LONG - SHORT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(BY_NAME), metavar="CONFIG")
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--baseline", choices=sorted(BY_NAME), help="also count this one")
    parser.add_argument(
        "--entries", action="store_true", help="also count entries into the interpreter from C"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    os.chdir(ROOT)
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    ours = _report(args.config, scenario, args.entries)
    if args.baseline:
        theirs = _report(args.baseline, scenario, args.entries)
        print(f"ratio {ours / theirs:.3f} (below 1: {args.config} does less work per request)")


def _report(name: str, scenario: Scenario, entries: bool) -> int:
    if not entries:
        count = per_request(name, scenario)
        print(f"{name} {scenario.method} {scenario.path}: {count:,} instructions/request")
        return count
    count, entered = entries_per_request(name, scenario)
    print(
        f"{name} {scenario.method} {scenario.path}: {count:,} instructions/request, "
        f"{entered:.1f} entries into the interpreter from C"
    )
    return count


if __name__ == "__main__":
    main()
