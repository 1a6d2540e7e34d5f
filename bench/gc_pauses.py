"""Garbage-collector pauses in a server under load, counted in CPU time: what noise does not move.

`python -m bench.gc_pauses [--configs velocipy/own-server-httptools] [--rounds 2]`
runs each configuration's server with a probe that records every collection
(generation, and the CPU time it took on the serving thread: `time.thread_time`,
so time the process spent descheduled by others is not counted), sends `POST
/signup` at 1,000 req/s for a few seconds, and sums the collections made
meanwhile. Four servers per configuration: the signup task doing nothing or
sleeping 1 s (~1,000 tasks in flight; the apps' in-flight bound raised, as in
`bench.latency`), each with VelociPy's serving thresholds
(`velocipy.adapters._gc.SERVING_THRESHOLDS`) and with CPython's own (700, 10,
10). Response-time percentiles are printed too, but on a loaded machine only
the pause counts mean something: a pause of several milliseconds holds every
request that arrives meanwhile, which is what a p99 at a fixed rate sees. The
server process's CPU time per 1,000 requests (`time.process_time`, the tasks
finishing after the load included) says what the collections cost in all, beside
what they hold up once. With `--count-scanned` the probe also counts the objects
each collection scans (the generations it collects, before it starts): per
request, and the most in one collection, counts that no load on the machine
moves (the walk that counts runs before each collection's clock starts, but the
server's CPU column includes it).

`python -m bench.gc_pauses probe OUT THRESHOLDS MODULE ARGS...` is the probe
itself (what the servers are started as): it runs `python -m MODULE ARGS...`
and writes the collections, and the process's CPU time, to OUT as JSON twice a
second.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import runpy
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.configs import BY_NAME, PY, SCENARIOS
from bench.latency import RAISED_BOUND
from bench.loadgen import run_pyload
from bench.servers import Server, free_port, start_all, stop_all

SIGNUP = next(s for s in SCENARIOS if s.name == "signup")
CPYTHON = (700, 10, 10)
#: Pauses at least this long (ms of CPU) are counted apart: at 1,000 req/s each holds
#: about that many requests, enough of them and the p99 is theirs.
LONG_MS = (1.0, 5.0)


#: Set (to anything) in a probe's environment: it also counts the objects each collection
#: scans (see `probe`).
COUNT_SCANNED = "BENCH_GC_COUNT_SCANNED"


def probe(out: str, thresholds: str, module: str, args: list[str]) -> None:
    """Run `python -m module args...` recording every collection into `out`.

    Each collection is (generation, CPU ms, objects scanned): with `COUNT_SCANNED` in
    the environment, the objects in the generations it collects (frozen ones are in
    none), counted before its clock starts; else 0. Counting is a walk of those
    generations, so it costs time of its own: a count, not a time, is what it is for.
    """
    events: list[tuple[int, float, int]] = []
    started = [0.0]
    scanned = [0]
    count = bool(os.environ.get(COUNT_SCANNED))

    def record(phase: str, info: dict[str, Any]) -> None:
        generation = info["generation"]
        if phase == "start":
            if count:
                scanned[0] = sum(len(gc.get_objects(g)) for g in range(generation + 1))
            started[0] = time.thread_time()
        else:
            ms = (time.thread_time() - started[0]) * 1000
            events.append((generation, ms, scanned[0]))

    def dump() -> None:
        partial = Path(out + ".partial")
        while True:
            time.sleep(0.5)
            # The process's CPU time (every thread, this one's share is negligible) beside
            # the collections: what the server spent in all, collections included.
            found = {"events": events[:], "cpu_s": time.process_time()}
            partial.write_text(json.dumps(found))
            partial.replace(out)  # whole files only for the reader

    if thresholds:
        import velocipy.adapters._gc as policy

        first, second, third = (int(n) for n in thresholds.split(","))
        policy.SERVING_THRESHOLDS = (first, second, third)
    gc.callbacks.append(record)
    threading.Thread(target=dump, daemon=True).start()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _read(path: Path) -> tuple[list[tuple[int, float, int]], float]:
    """The collections the probe has recorded so far, and the process's CPU seconds."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):  # not written yet
        return [], 0.0
    events = [(int(g), float(ms), int(n)) for g, ms, n in found["events"]]
    return events, float(found["cpu_s"])


def summarize(events: list[tuple[int, float, int]]) -> dict[str, Any]:
    """Counts, CPU milliseconds and objects scanned of `events`, by generation and length."""
    found: dict[str, Any] = {"collections": len(events)}
    for generation in (0, 1, 2):
        times = [ms for g, ms, _ in events if g == generation]
        found[f"gen{generation}"] = {
            "n": len(times),
            "cpu_ms": sum(times),
            "max_ms": max(times, default=0.0),
        }
    for limit in LONG_MS:
        found[f"over_{limit:g}ms"] = sum(1 for _, ms, _ in events if ms >= limit)
    found["cpu_ms"] = sum(ms for _, ms, _ in events)
    found["max_ms"] = max((ms for _, ms, _ in events), default=0.0)
    found["scanned"] = sum(n for _, _, n in events)
    found["most_scanned"] = max((n for _, _, n in events), default=0)
    return found


def measure(
    names: list[str],
    *,
    rate: float,
    duration: float,
    rounds: int,
    connections: int,
    thresholds: list[str] | None = None,
    sleeps: tuple[float, ...] = (0.0, 1.0),
    count_scanned: bool = False,
) -> dict[str, Any]:
    """Collections during `duration` s of POST /signup at `rate`, per variant and round.

    `count_scanned`: the probes also count the objects each collection scans.
    """
    folder = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    servers: list[tuple[Server, Path]] = []
    for name in names:
        argv = BY_NAME[name].command(0)
        if argv[1] != "-m":
            raise SystemExit(f"{name}: not started as `python -m MODULE`")
        for chosen in thresholds or ["", ",".join(map(str, CPYTHON))]:
            for sleep in sleeps:
                port = free_port()
                out = folder / f"{len(servers)}.json"
                command = [PY, "-m", "bench.gc_pauses", "probe", str(out), chosen]
                command += [argv[2], *BY_NAME[name].command(port)[3:]]
                server = Server(name, command, port)
                server.env = {
                    "BENCH_TASK_SLEEP": str(sleep),
                    "BENCH_MAX_TASKS_IN_FLIGHT": str(RAISED_BOUND),
                    **({COUNT_SCANNED: "1"} if count_scanned else {}),
                }
                label = (
                    "serving thresholds"
                    if not chosen
                    else f"CPython's {CPYTHON}"
                    if chosen == ",".join(map(str, CPYTHON))
                    else f"({chosen})"
                )
                server.name = f"{name}|{'1 s task' if sleep else 'no-op task'}|{label}"
                servers.append((server, out))
    results: dict[str, Any] = {
        "rate": rate,
        "duration": duration,
        "count_scanned": count_scanned,
        "runs": {},
    }
    try:
        start_all([s for s, _ in servers])
        for number in range(1, rounds + 1):
            print(f"gc pauses: round {number}/{rounds} ...", file=sys.stderr, flush=True)
            for server, out in servers:
                if server.problem or server.check(SIGNUP):
                    results["runs"].setdefault(server.name, []).append({"problem": server.problem})
                    continue
                time.sleep(0.6)  # the probe writes twice a second
                events, cpu_before = _read(out)
                load = run_pyload(server.port, SIGNUP, duration, connections, rate=rate)
                # The last tasks end `max(sleeps)` after the load; then one more write.
                time.sleep(max(sleeps) + 0.6)
                after, cpu_after = _read(out)
                run = summarize(after[len(events) :])
                run.update(p50_ms=load["p50_ms"], p99_ms=load["p99_ms"], requests=load["requests"])
                # Every task the load started has finished by then: per request, the whole
                # cost of one, its task and the collections included.
                requests = load["requests"] or 1
                run["server_cpu_ms_per_1k"] = (cpu_after - cpu_before) * 1e6 / requests
                run["scanned_per_request"] = run["scanned"] / requests
                results["runs"].setdefault(server.name, []).append(run)
    finally:
        stop_all([s for s, _ in servers])
    return results


def table(results: dict[str, Any]) -> str:
    scanned = results.get("count_scanned")
    extra = " objects scanned per request | most in one collection |" if scanned else ""
    lines = [
        "| server, task, thresholds | round | collections (gen 0/1/2) | CPU ms in collections "
        "| longest, ms (gen 0/1/2) | ≥ 1 ms | ≥ 5 ms | server CPU ms per 1,000 requests "
        "| p99 ms (loaded machine: indicative) |" + extra,
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if scanned else ""),
    ]
    for name, runs in results["runs"].items():
        for number, run in enumerate(runs, 1):
            if "problem" in run:
                lines.append(f"| {name} | {number} | failed: {run['problem'][:60]} | | | | | | |")
                continue
            counts = "/".join(str(run[f"gen{g}"]["n"]) for g in (0, 1, 2))
            longest = "/".join(f"{run[f'gen{g}']['max_ms']:.1f}" for g in (0, 1, 2))
            line = (
                f"| {name} | {number} | {counts} | {run['cpu_ms']:.0f} | {longest} | "
                f"{run['over_1ms']} | {run['over_5ms']} | {run['server_cpu_ms_per_1k']:.0f} | "
                f"{run['p99_ms']:.1f} |"
            )
            if scanned:
                line += f" {run['scanned_per_request']:.1f} | {run['most_scanned']:,} |"
            lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["probe"]:
        probe(argv[1], argv[2], argv[3], argv[4:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.gc_pauses", description=__doc__)
    parser.add_argument("--configs", default="velocipy/own-server-httptools")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--thresholds",
        help="serving thresholds to compare, ';'-separated (e.g. '200,10,35;700,10,10'; "
        "'' is the server's own); default: the server's own and CPython's",
    )
    parser.add_argument("--sleeping-only", action="store_true", help="only the 1 s task")
    parser.add_argument(
        "--count-scanned", action="store_true",
        help="also count the objects each collection scans (a count; it makes them slower)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    results = measure(
        names,
        rate=args.rate,
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        thresholds=args.thresholds.split(";") if args.thresholds is not None else None,
        sleeps=(1.0,) if args.sleeping_only else (0.0, 1.0),
        count_scanned=args.count_scanned,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
