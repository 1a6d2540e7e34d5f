"""Instructions per request of the core and its async driver alone, with no server.

`python -m bench.core_instructions signup` runs the benchmark app's exchanges
in process, driven by `drive_async` the way the built-in server drives them
(response effect, then the rest: tasks and cleanup), under
`valgrind --tool=callgrind`, once with 200 requests and once with 2,200; the
difference divided by 2,000 is the cost per request with start-up taken out.
It takes seconds where `bench.instructions` (a whole server under valgrind)
takes minutes, so it is the figure to compare core changes with; run it from
each tree, one after the other, in one venv, after `python -m compileall -q
velocipy`. `--inside` is the run valgrind counts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from typing import Any

SHORT, LONG = 200, 2200

BODY = b'{"email": "ada@example.com", "name": "Ada"}'
HEADERS = [(b"host", b"127.0.0.1"), (b"user-agent", b"bench")]
BODY_HEADERS = [
    *HEADERS,
    (b"content-type", b"application/json"),
    (b"content-length", b"%d" % len(BODY)),
]
#: Scenario: method, path, headers.
SCENARIOS = {
    "hello": ("GET", "/hello", HEADERS),
    "signup": ("POST", "/signup", BODY_HEADERS),
    "item": ("GET", "/items/42", HEADERS),
}


def serve(scenario: str, requests: int) -> None:
    """Run `requests` exchanges of `scenario` through `drive_async`, as the own server does."""
    from bench.apps.velocipy_app import app
    from velocipy.adapters._drive import drive_async
    from velocipy.core import Call, Done, RequestHead, Respond

    method, path, headers = SCENARIOS[scenario]

    async def read_body(limit: int, size: int = 0) -> bytes:
        return BODY

    async def run_sync(call: Call) -> Any:
        return call.fn(*call.args, **call.kwargs)

    async def main() -> None:
        client, server = ("127.0.0.1", 50000), ("127.0.0.1", 8000)
        for _ in range(requests):
            head = RequestHead(method, path, b"", list(headers), "1.1", "http", client, server)
            exchange = app.exchange(head)
            effect = await drive_async(
                exchange, exchange.start(), read_body=read_body, run_sync=run_sync
            )
            if type(effect) is not Respond or effect.status != 200:
                raise SystemExit(f"unexpected answer: {effect!r:.200}")
            rest = exchange.send(None)
            if type(rest) is not Done:
                await drive_async(exchange, rest, read_body=read_body, run_sync=run_sync)

    asyncio.run(main())


def counted(scenario: str, requests: int) -> int:
    """Instructions of a whole `--inside` run of `requests` exchanges."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "bench.core_instructions", scenario,
         "--inside", str(requests)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise SystemExit(f"callgrind reported no total:\n{result.stderr[-2000:]}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--inside", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        serve(args.scenario, args.inside)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    short, long = counted(args.scenario, SHORT), counted(args.scenario, LONG)
    per_request = (long - short) // (LONG - SHORT)
    print(f"core + drive_async {args.scenario}: {per_request:,} instructions/request")


if __name__ == "__main__":
    main()
