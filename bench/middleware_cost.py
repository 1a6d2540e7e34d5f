"""What one middleware costs per `GET /hello`: VelociPy beside FastAPI, on uvicorn (httptools).

`python -m bench.middleware_cost` counts, under valgrind's callgrind, the
instructions each server executes per request (as `bench.instructions` does:
a long run minus a short run), for six apps (`bench/apps/middleware_apps.py`):
each framework without middleware, with one `@app.middleware("http")` and with
its `CORSMiddleware`. A middleware's cost is its app's count minus the plain
app's; the verdict compares VelociPy's cost with FastAPI's (the target: less
than a third). Instruction counts do not move with the machine's load.

`--wrk S` also loads each app for S seconds with wrk (`-c50`, one thread) and
prints requests per second and each middleware's throughput ratio to its plain
app: noisy on a busy machine, so the load average is printed with it.
`--smoke` only checks that every app answers, without valgrind (the test suite).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
from dataclasses import dataclass

from bench.apps.middleware_apps import ORIGIN
from bench.configs import PY, UVICORN_LOOP, Scenario
from bench.instructions import LONG, SHORT, server_instructions
from bench.servers import Server, free_port

FRAMEWORKS = ("velocipy", "fastapi")
KINDS = ("plain", "http", "cors")
#: The target of issue 13: VelociPy's middleware costs less than this share of FastAPI's.
TARGET = 1 / 3

HELLO = Scenario("hello", "GET", "/hello", b"", {"message": "hello"})
REQUEST = (
    f"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nOrigin: {ORIGIN}\r\n\r\n"
).encode()


@dataclass(frozen=True)
class App:
    framework: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.framework}_{self.kind}"

    def argv(self, port: int) -> list[str]:
        return [
            PY, "-m", "uvicorn", f"bench.apps.middleware_apps:{self.name}",
            "--host", "127.0.0.1", "--port", str(port), "--http", "httptools",
            "--loop", UVICORN_LOOP, "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip


APPS = [App(framework, kind) for framework in FRAMEWORKS for kind in KINDS]


def answers(app: App, timeout: float = 30.0) -> str:
    """ "" if `app` serves `GET /hello` right (with the CORS header where due), else why not."""
    port = free_port()
    server = Server(app.name, app.argv(port), port)
    server.start()
    try:
        if not server.wait_ready(timeout):
            return server.problem
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("GET", "/hello", headers={"Origin": ORIGIN})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200 or body != b'{"message":"hello"}':
            return f"answered {response.status} {body[:80]!r}"
        if app.kind == "cors" and response.getheader("access-control-allow-origin") != ORIGIN:
            return "no access-control-allow-origin header"
        if app.kind == "http" and response.getheader("x-mw") != "1":
            return "the middleware's header is missing"
        return ""
    finally:
        server.stop()


def instructions(app: App) -> int:
    """Instructions per request of `app` (long run minus short run, as `bench.instructions`)."""
    counts = [
        server_instructions(app.name, HELLO, requests, command=app.argv, request=REQUEST)
        for requests in (SHORT, LONG)
    ]
    return (counts[1] - counts[0]) // (LONG - SHORT)


def wrk_rps(app: App, duration: float) -> float:
    from bench.loadgen import parse_wrk

    port = free_port()
    server = Server(app.name, app.argv(port), port)
    server.start()
    try:
        if not server.wait_ready(30):
            raise SystemExit(f"{app.name} did not start: {server.problem}")
        argv = [
            "wrk", "-t1", "-c50", f"-d{max(1, round(duration))}s", "--latency",
            "-H", f"Origin: {ORIGIN}", f"http://127.0.0.1:{port}/hello",
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
        return float(parse_wrk(done.stdout)["rps"])
    finally:
        server.stop()


def report(counts: dict[str, int]) -> list[str]:
    """The side-by-side table of counts and middleware costs, and the verdicts."""
    lines = ["| app | VelociPy | FastAPI |", "|---|---|---|"]
    for kind in KINDS:
        ours, theirs = counts[f"velocipy_{kind}"], counts[f"fastapi_{kind}"]
        lines.append(f"| GET /hello, {kind} | {ours:,} | {theirs:,} |")
    for kind in ("http", "cors"):
        ours = counts[f"velocipy_{kind}"] - counts["velocipy_plain"]
        theirs = counts[f"fastapi_{kind}"] - counts["fastapi_plain"]
        share = ours / theirs if theirs else float("inf")
        verdict = "met" if share < TARGET else "missed"
        lines.append(
            f"| cost of the {kind} middleware | {ours:,} | {theirs:,} |"
            f" VelociPy's is {share:.2f} of FastAPI's (target < {TARGET:.2f}: {verdict})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="only check that every app answers")
    parser.add_argument("--wrk", type=float, default=0.0, metavar="S", help="also wrk each app")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    args = parser.parse_args()
    chosen = [app for app in APPS if app.framework in args.frameworks.split(",")]
    problems = {app.name: answers(app) for app in chosen}
    for name, problem in problems.items():
        print(f"{name}: {problem or 'ok'}")
    if any(problems.values()):
        raise SystemExit("some apps do not answer right; nothing measured")
    if args.smoke:
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install -y valgrind)")
    counts = {app.name: instructions(app) for app in chosen}
    for name, count in counts.items():
        print(f"{name}: {count:,} instructions/request")
    if len(chosen) == len(APPS):
        print("\n".join(report(counts)))
    if args.wrk:
        print(f"load average before wrk: {os.getloadavg()[0]:.2f}")
        rps = {app.name: wrk_rps(app, args.wrk) for app in chosen}
        for name, value in rps.items():
            print(f"{name}: {value:,.0f} requests/s")
        for framework in {app.framework for app in chosen}:
            for kind in ("http", "cors"):
                ratio = rps[f"{framework}_{kind}"] / rps[f"{framework}_plain"]
                print(f"{framework} {kind}: {ratio:.2f} of the plain app's throughput")
        print(f"load average after wrk: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
