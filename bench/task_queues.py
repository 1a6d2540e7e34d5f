"""`POST /signup` + one task: in process, published to Celery on Redis, and FastAPI + `.delay()`.

`python -m bench.task_queues [--rounds 3] [--duration 5]` starts, on uvicorn
httptools (one worker each, pinned like `bench.run`), the VelociPy signup app
with its task in process (`velocipy_app`), the same handler with
`task_backend=CeleryBackend(...)` (`velocipy_queue_app`), FastAPI calling
Celery's `.delay()` in its handler (`fastapi_celery_app`), and the queue app with
a backend that sends nowhere (VelociPy's own share of publishing); checks each answers
the scenario, then measures them in interleaved rounds (wrk, else bench.pyload)
and prints requests/s (median, min-max) and the ratios the issue asks for.

No worker runs: what is measured is the web process, publish included. The
queue is emptied after every measurement, in a Redis database (`BENCH_REDIS_URL`,
default `redis://127.0.0.1:6379/12`) and under a queue name of this run's own.

`python -m bench.task_queues --instructions` counts instead, under callgrind
(`bench.instructions`), the instructions the web process executes per request in
each configuration, its publishing thread included: the figure that the load of a
shared machine does not move. Under valgrind the server runs ~50 times slower
while Redis does not, so fewer requests share a round trip than at full speed:
the count is, if anything, pessimistic for the batching publisher.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import redis

from bench.configs import SCENARIOS, uvicorn
from bench.instructions import LONG, SHORT, server_instructions
from bench.loadgen import run_load, wrk_available
from bench.servers import Server, free_port, start_all, stop_all

SIGNUP = next(scenario for scenario in SCENARIOS if scenario.name == "signup")

APPS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("VelociPy, task in process", "velocipy_app:app", {}),
    ("VelociPy, task published to Celery (Redis)", "velocipy_queue_app:app", {}),
    ("FastAPI, Celery .delay() in the handler", "fastapi_celery_app:app", {}),
    # VelociPy's own share of publishing: the publishing thread, sending nowhere.
    (
        "VelociPy, publishing thread that sends nowhere",
        "velocipy_queue_app:app",
        {"BENCH_QUEUE_BACKEND": "null"},
    ),
    # ... and an async backend that takes the batch on the loop: no thread at all.
    (
        "VelociPy, async backend on the loop that sends nowhere",
        "velocipy_queue_app:app",
        {"BENCH_QUEUE_BACKEND": "null-async"},
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per request instead"
    )
    parser.add_argument(
        "--only",
        default="",
        help="with --instructions: count only these configurations (numbers from 1, "
        "comma-separated, in the order printed), e.g. --only 1,2",
    )
    options = parser.parse_args()

    queue = f"velocipy-bench-{uuid.uuid4().hex[:8]}"
    env = {"BENCH_REDIS_URL": options.redis, "BENCH_QUEUE": queue}
    broker = redis.Redis.from_url(options.redis)
    if options.instructions:
        try:
            count_instructions(env, frozenset(int(n) - 1 for n in options.only.split(",") if n))
        finally:
            broker.delete(queue)
        return
    tool = "wrk" if wrk_available() else "python"
    servers = [
        Server(title, list(uvicorn(target, "httptools")), 0, env={**env, **extra})
        for title, target, extra in APPS
    ]
    for server in servers:
        server.port = free_port()
        server.argv = [part.format(port=server.port) for part in server.argv]
    figures: dict[str, list[float]] = {server.name: [] for server in servers}
    try:
        start_all(servers)
        for server in servers:
            problem = server.problem or server.check(SIGNUP)
            if problem:
                raise SystemExit(f"{server.name}: {problem}")
            run_load(tool, server.port, SIGNUP, 1.0, options.connections)  # warm-up
        broker.delete(queue)
        for _ in range(options.rounds):
            for server in servers:
                result = run_load(tool, server.port, SIGNUP, options.duration, options.connections)
                figures[server.name].append(float(result["rps"]))
                broker.delete(queue)
                time.sleep(0.5)
    finally:
        stop_all(servers)
        broker.delete(queue)

    print(f"POST /signup + one task, uvicorn httptools, {tool}, {options.connections} connections,")
    print(f"{options.rounds} rounds of {options.duration:.0f} s; requests/s, median (min-max)\n")
    print("| configuration | requests/s |")
    print("|---|---|")
    medians = {}
    for name, values in figures.items():
        medians[name] = statistics.median(values)
        print(f"| {name} | {medians[name]:,.0f} ({min(values):,.0f}-{max(values):,.0f}) |")
    in_process, queued, fastapi, nowhere, nowhere_async = (medians[title] for title, _, _ in APPS)
    print(f"\nVelociPy + Celery / FastAPI + .delay(): {queued / fastapi:.2f}x (target >= 1.5x)")
    added = (1 / queued - 1 / in_process) / (1 / in_process)
    print(f"cost per request added by publishing, vs in process: {added:+.0%} (target <= +25%)")
    ours = (1 / nowhere - 1 / in_process) / (1 / in_process)
    print(f"  of which VelociPy's own part (the thread, sending nowhere): {ours:+.0%}")
    hopless = (1 / nowhere_async - 1 / in_process) / (1 / in_process)
    print(f"  an async backend on the loop, sending nowhere: {hopless:+.0%}")


def count_instructions(env: dict[str, str], only: frozenset[int] = frozenset()) -> None:
    """Print instructions per request of each configuration (or of `only`), and the
    added cost."""
    counts: dict[str, int] = {}
    for index, (title, target, extra) in enumerate(APPS):
        if only and index not in only:
            continue

        def command(port: int, target: str = target) -> list[str]:
            return [part.format(port=port) for part in uvicorn(target, "httptools")]

        runs = [
            server_instructions(title, SIGNUP, requests, command=command, env={**env, **extra})
            for requests in (SHORT, LONG)
        ]
        counts[title] = (runs[1] - runs[0]) // (LONG - SHORT)
        print(f"| {title} | {counts[title]:,} |", flush=True)
    if only:
        return
    in_process, queued, fastapi, nowhere, nowhere_async = (counts[title] for title, _, _ in APPS)
    print(f"\nadded by publishing to Celery, vs in process: {queued / in_process - 1:+.1%}")
    print(f"  VelociPy's own part (the thread, sending nowhere): {nowhere / in_process - 1:+.1%}")
    print(f"  an async backend on the loop, sending nowhere: {nowhere_async / in_process - 1:+.1%}")
    print(f"FastAPI + .delay() / VelociPy + Celery: {fastapi / queued:.2f}x the instructions")


if __name__ == "__main__":
    main()
