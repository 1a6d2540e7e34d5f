"""`POST /signup` + one task: in process, published to Celery on Redis, and FastAPI + `.delay()`.

`python -m bench.task_queues [--rounds 3] [--duration 5]` starts, on uvicorn
httptools (one worker each, pinned like `bench.run`), the VelociPy signup app
with its task in process (`velocipy_app`), the same handler with
`task_backend=CeleryBackend(...)` (`velocipy_queue_app`), FastAPI calling
Celery's `.delay()` in its handler (`fastapi_celery_app`), and the queue app with
a backend that sends nowhere (VelociPy's own share of publishing); checks each answers
the scenario, then measures them in interleaved rounds (wrk, else bench.pyload)
and prints requests/s (median, min-max) and the ratios the issue asks for.

Beside the rate, the server process's own CPU time per request (all its threads,
from `/proc`): on a shared machine the rate moves with everyone else's work, the
CPU time a request costs much less, so the added cost is given from both.

No worker runs: what is measured is the web process, publish included. The
queue is emptied after every measurement, in a Redis database (`BENCH_REDIS_URL`,
default `redis://127.0.0.1:6379/12`) and under a queue name of this run's own.

`python -m bench.task_queues --instructions` counts instead, under callgrind
(`bench.instructions`), the instructions the web process executes per request in
each configuration, its publishing thread included: the figure that the load of a
shared machine does not move. Under valgrind the server runs ~50 times slower
while Redis does not, so fewer requests share a round trip than at full speed:
the count is, if anything, pessimistic for the batching publisher. With
`--entries` it also counts the entries into the interpreter's loop from C per
request (see `bench.instructions`).

`python -m bench.task_queues --bytecodes [--only 1,2] [--top N]` counts the Python
bytecodes and calls per request of each configuration (`bench.bytecodes`, the
publishing thread included), and, beside the first (in process), the functions
whose bytecodes per request differ most from it: where a queued task's path
spends what the in-process one does not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from collections.abc import Callable

import redis

from bench import bytecodes
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
        "--entries",
        action="store_true",
        help="with --instructions: also count entries into the interpreter from C",
    )
    parser.add_argument(
        "--bytecodes", action="store_true", help="count Python bytecodes per request instead"
    )
    parser.add_argument(
        "--top",
        type=int,
        default=25,
        help="with --bytecodes: list the N functions that differ most from in process",
    )
    parser.add_argument(
        "--only",
        default="",
        help="with --instructions or --bytecodes: count only these configurations (numbers "
        "from 1, comma-separated, in the order printed), e.g. --only 1,2",
    )
    options = parser.parse_args()
    only = frozenset(int(n) - 1 for n in options.only.split(",") if n)

    queue = f"velocipy-bench-{uuid.uuid4().hex[:8]}"
    env = {"BENCH_REDIS_URL": options.redis, "BENCH_QUEUE": queue}
    broker = redis.Redis.from_url(options.redis)
    if options.instructions or options.bytecodes:
        try:
            if options.bytecodes:
                count_bytecodes(env, only, options.top)
            else:
                count_instructions(env, only, entries=options.entries)
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
    cpu: dict[str, list[float]] = {server.name: [] for server in servers}
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
                assert server.process is not None
                before = cpu_seconds(server.process.pid)
                result = run_load(tool, server.port, SIGNUP, options.duration, options.connections)
                spent = cpu_seconds(server.process.pid) - before
                figures[server.name].append(float(result["rps"]))
                cpu[server.name].append(spent * 1e6 / max(1, int(result["requests"])))
                broker.delete(queue)
                time.sleep(0.5)
    finally:
        stop_all(servers)
        broker.delete(queue)

    print(f"POST /signup + one task, uvicorn httptools, {tool}, {options.connections} connections,")
    print(f"{options.rounds} rounds of {options.duration:.0f} s; requests/s, median (min-max)\n")
    print("| configuration | requests/s | server CPU µs per request |")
    print("|---|---|---|")
    medians = {}
    cpu_medians = {}
    for name, values in figures.items():
        medians[name] = statistics.median(values)
        cpu_medians[name] = statistics.median(cpu[name])
        print(
            f"| {name} | {medians[name]:,.0f} ({min(values):,.0f}-{max(values):,.0f}) | "
            f"{cpu_medians[name]:.0f} ({min(cpu[name]):.0f}-{max(cpu[name]):.0f}) |"
        )
    in_process, queued, fastapi, nowhere, nowhere_async = (medians[title] for title, _, _ in APPS)
    print(f"\nVelociPy + Celery / FastAPI + .delay(): {queued / fastapi:.2f}x (target >= 1.5x)")
    added = (1 / queued - 1 / in_process) / (1 / in_process)
    print(f"cost per request added by publishing, vs in process: {added:+.0%} (target <= +25%)")
    ours = (1 / nowhere - 1 / in_process) / (1 / in_process)
    print(f"  of which VelociPy's own part (the thread, sending nowhere): {ours:+.0%}")
    hopless = (1 / nowhere_async - 1 / in_process) / (1 / in_process)
    print(f"  an async backend on the loop, sending nowhere: {hopless:+.0%}")
    spent = [cpu_medians[title] for title, _, _ in APPS]
    print(
        f"in server CPU time per request: publishing to Celery {spent[1] / spent[0] - 1:+.0%}, "
        f"the thread sending nowhere {spent[3] / spent[0] - 1:+.0%}, "
        f"an async backend sending nowhere {spent[4] / spent[0] - 1:+.0%}"
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) the process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        # The fields after the command's name (in parentheses, which may hold spaces):
        # utime and stime are the 14th and 15th of the whole line.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _command(target: str) -> Callable[[int], list[str]]:
    """How to start `target` on uvicorn httptools on a given port."""

    def command(port: int) -> list[str]:
        return [part.format(port=port) for part in uvicorn(target, "httptools")]

    return command


def count_instructions(
    env: dict[str, str], only: frozenset[int] = frozenset(), *, entries: bool = False
) -> None:
    """Print instructions (and with `entries`, interpreter entries from C) per request
    of each configuration (or of `only`), and the added cost."""
    counts: dict[str, int] = {}
    for index, (title, target, extra) in enumerate(APPS):
        if only and index not in only:
            continue
        entered: list[int] = []
        runs = [
            server_instructions(
                title,
                SIGNUP,
                requests,
                command=_command(target),
                env={**env, **extra},
                entries=entered if entries else None,
            )
            for requests in (SHORT, LONG)
        ]
        counts[title] = (runs[1] - runs[0]) // (LONG - SHORT)
        if entries:
            per = (entered[1] - entered[0]) / (LONG - SHORT)
            print(f"| {title} | {counts[title]:,} | {per:.1f} entries |", flush=True)
        else:
            print(f"| {title} | {counts[title]:,} |", flush=True)
    if only:
        return
    in_process, queued, fastapi, nowhere, nowhere_async = (counts[title] for title, _, _ in APPS)
    print(f"\nadded by publishing to Celery, vs in process: {queued / in_process - 1:+.1%}")
    print(f"  VelociPy's own part (the thread, sending nowhere): {nowhere / in_process - 1:+.1%}")
    print(f"  an async backend on the loop, sending nowhere: {nowhere_async / in_process - 1:+.1%}")
    print(f"FastAPI + .delay() / VelociPy + Celery: {fastapi / queued:.2f}x the instructions")


def count_bytecodes(env: dict[str, str], only: frozenset[int], top: int) -> None:
    """Print bytecodes and calls per request of each configuration (or of `only`), and
    for each beside the first (in process), the `top` functions that differ most."""
    counted: dict[str, dict[str, dict[str, float]]] = {}
    for index, (title, target, extra) in enumerate(APPS):
        if only and index not in only:
            continue
        counts = bytecodes.per_request(
            title, SIGNUP, command=_command(target), env={**env, **extra}
        )
        counted[title] = counts
        ops, calls = sum(counts["ops"].values()), sum(counts["calls"].values())
        print(f"| {title} | {ops:,.0f} bytecodes | {calls:.1f} calls |", flush=True)
    in_process = APPS[0][0]
    if in_process not in counted:
        return
    for title, counts in counted.items():
        if title != in_process:
            print(f"\n{title}, against in process:")
            for line in compare(counted[in_process], counts, top):
                print(line)


def compare(
    base: dict[str, dict[str, float]], other: dict[str, dict[str, float]], top: int
) -> list[str]:
    """The lines of a per-function comparison of two `bytecodes.per_request` counts: the
    totals' difference, then the `top` functions whose bytecodes per request differ
    most (more first), with their calls per request in each."""
    ops_a, ops_b = base["ops"], other["ops"]
    calls_a, calls_b = base["calls"], other["calls"]
    total_a, total_b = sum(ops_a.values()), sum(ops_b.values())
    frames_a, frames_b = sum(calls_a.values()), sum(calls_b.values())
    lines = [
        f"  {total_b - total_a:+,.0f} bytecodes ({total_b / total_a - 1:+.1%}), "
        f"{frames_b - frames_a:+.1f} calls and resumptions per request",
        "  bytecodes: base -> other (diff); calls: base -> other; function",
    ]
    deltas = {key: ops_b.get(key, 0) - ops_a.get(key, 0) for key in set(ops_a) | set(ops_b)}
    for key in sorted(deltas, key=lambda k: (-abs(deltas[k]), k))[:top]:
        if abs(deltas[key]) < 0.5:
            break
        lines.append(
            f"  {ops_a.get(key, 0):7.1f} -> {ops_b.get(key, 0):7.1f} ({deltas[key]:+7.1f}); "
            f"{calls_a.get(key, 0):5.1f} -> {calls_b.get(key, 0):5.1f}  {key}"
        )
    return lines


if __name__ == "__main__":
    main()
