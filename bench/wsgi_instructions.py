"""Instructions per request of a WSGI app inside gunicorn's own request handling, in process.

`python -m bench.wsgi_instructions hello` (or `signup`) counts, with valgrind's
callgrind, what one request costs when gunicorn's gthread worker would serve
it: gunicorn's parser reads the raw request, `gunicorn.http.wsgi.create`
builds the environ and the response, the app is called, its body written to a
socket that discards it, and the response iterable closed, as the worker's
`handle_request` does. It does so for the bare WSGI app and for VelociPy's,
each with a short and a long run (the difference divided by the difference in
requests), and prints the ratio: an estimate of the gthread throughput ratio
that noise does not move (`bench.instructions` cannot follow gunicorn's
forked workers). The worker's socket and thread plumbing, the same for every
app, is left out, so the estimate leans slightly pessimistic.

`python -m bench.wsgi_instructions --run APP SCENARIO N` is what runs under
valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.configs import SCENARIOS, Scenario
from bench.servers import ROOT

SHORT, LONG = 200, 2200
WARM_UP = 50


class NullSocket:
    """Takes every byte gunicorn writes and keeps none."""

    def sendall(self, data: bytes) -> None:
        pass

    def send(self, data: bytes) -> int:
        return len(data)

    def fileno(self) -> int:
        return -1

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8000)


def raw_request(scenario: Scenario) -> bytes:
    head = (
        f"{scenario.method} {scenario.path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
        "User-Agent: wrk\r\nAccept: */*\r\n"
    )
    if scenario.body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(scenario.body)}\r\n"
    return head.encode() + b"\r\n" + scenario.body


def serve_requests(app_name: str, scenario: Scenario, count: int) -> None:
    """Serve `count` requests (after a warm-up) the way a gthread worker would."""
    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser

    import bench.apps.bare_wsgi
    import bench.apps.velocipy_app

    app: Any
    wait: Callable[[], None] = lambda: None  # noqa: E731
    if app_name == "bare":
        app = bench.apps.bare_wsgi.wsgi
    else:
        app = bench.apps.velocipy_app.wsgi
        runner = app.runner

        def wait() -> None:  # the tasks are part of the cost: let them finish
            while runner.pending:
                time.sleep(0.001)

    config, sock = Config(), NullSocket()
    client, server = ("127.0.0.1", 50000), ("127.0.0.1", 8000)
    raw = raw_request(scenario)

    def one() -> None:
        request = next(RequestParser(config, iter([raw]), client))
        response, environ = wsgi.create(request, sock, client, server, config)
        environ["wsgi.multithread"] = True
        body = app(environ, response.start_response)
        try:
            for chunk in body:
                response.write(chunk)
            response.close()
        finally:
            if hasattr(body, "close"):
                body.close()

    for _ in range(WARM_UP):
        one()
    wait()
    for _ in range(count):
        one()
    wait()


def instructions(app_name: str, scenario: Scenario, count: int) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "bench.wsgi_instructions", "--run", app_name, scenario.name,
        str(count),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"callgrind reported no total:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def per_request(app_name: str, scenario: Scenario) -> int:
    short = instructions(app_name, scenario, SHORT)
    return (instructions(app_name, scenario, LONG) - short) // (LONG - SHORT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS], nargs="?")
    parser.add_argument("--run", nargs=3, metavar=("APP", "SCENARIO", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        app_name, name, count = args.run
        serve_requests(app_name, next(s for s in SCENARIOS if s.name == name), int(count))
        return
    if args.scenario is None:
        parser.error("a scenario is needed")
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    bare = per_request("bare", scenario)
    ours = per_request("velocipy", scenario)
    print(f"bare WSGI      {scenario.method} {scenario.path}: {bare:,} instructions/request")
    print(f"VelociPy WSGI  {scenario.method} {scenario.path}: {ours:,} instructions/request")
    print(f"estimated gthread throughput ratio {bare / ours:.3f}")


if __name__ == "__main__":
    main()
