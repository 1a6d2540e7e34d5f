"""Latency under tasks: does a slow background task delay responses?

Each VelociPy configuration runs twice side by side: once with the signup
task doing nothing, once with it sleeping 1 s (`BENCH_TASK_SLEEP=1`). The
pure-Python generator sends `POST /signup` at a fixed rate the server easily
sustains, over 50 keep-alive connections, alternating between the two servers
round after round (fresh processes each round); p50/p99 of the response times
are compared as a ratio. The generator's own noise floor (same rate against
`bench.ceiling`) is reported beside them.
"""

from __future__ import annotations

import signal
import statistics
import sys
from typing import Any

from bench.configs import BY_NAME, PY, SCENARIOS
from bench.loadgen import run_pyload
from bench.servers import Server, free_port, start_all, stop_all

SIGNUP = next(s for s in SCENARIOS if s.name == "signup")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def measure(
    names: list[str],
    *,
    rate: float,
    duration: float,
    rounds: int,
    connections: int,
    sleep: float = 1.0,
    floor: bool = True,
) -> dict[str, Any]:
    """p50/p99 of POST /signup with a `sleep`-second task vs a no-op task, per configuration."""
    servers: list[Server] = []
    for name in names:
        for variant, seconds in (("idle", 0.0), ("sleeping", sleep)):
            port = free_port()
            server = Server(name, BY_NAME[name].command(port), port)
            server.env = {"BENCH_TASK_SLEEP": str(seconds)}
            server.name = f"{name}|{variant}"
            servers.append(server)
    ceiling_port = free_port()
    ceiling = Server(
        "ceiling", [PY, "-m", "bench.ceiling", "--port", str(ceiling_port)], ceiling_port
    )
    extra = [ceiling] if floor else []
    results: dict[str, Any] = {
        "rate": rate,
        "duration": duration,
        "rounds": rounds,
        "task_sleep": sleep,
        "configs": {},
    }
    try:
        log(f"latency under tasks: starting {len(servers) + len(extra)} servers ...")
        start_all([*servers, *extra])
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
        floor_runs: list[dict[str, Any]] = []
        live = [s for s in servers if not s.problem and not s.check(SIGNUP)]
        for number in range(1, rounds + 1):
            log(f"latency round {number}/{rounds} ...")
            if number > 1:
                # Fresh processes each round: a server whose slow tasks outpace it (sync
                # tasks on a bounded thread pool) would otherwise carry its backlog into
                # the next round, which would then measure the backlog, not the task.
                for server in live:
                    server.stop(grace=1.0, sig=signal.SIGKILL)
                start_all(live)
                live = [s for s in live if not s.problem and not s.check(SIGNUP)]
            if extra and not ceiling.problem:
                floor_runs.append(
                    run_pyload(ceiling.port, SIGNUP, duration, connections, rate=rate)
                )
            for server in live:
                try:
                    outcome = run_pyload(server.port, SIGNUP, duration, connections, rate=rate)
                except Exception as error:  # record and go on
                    outcome = {"failure": repr(error)[:300]}
                runs[server.name].append(outcome)
                log(f"  {server.name:40} p50 {outcome.get('p50_ms')} p99 {outcome.get('p99_ms')}")
        results["generator_floor"] = {
            "p50_ms": _median(floor_runs, "p50_ms"),
            "p99_ms": _median(floor_runs, "p99_ms"),
        }
        for name in names:
            idle = next(s for s in servers if s.name == f"{name}|idle")
            sleeping = next(s for s in servers if s.name == f"{name}|sleeping")
            problem = idle.problem or sleeping.problem
            if not problem:
                problem = idle.check(SIGNUP) or sleeping.check(SIGNUP)
            entry: dict[str, Any] = {"status": "unavailable" if problem else "ok"}
            entry["reason"] = problem
            for variant, server in (("idle", idle), ("sleeping", sleeping)):
                entry[variant] = {
                    "runs": runs[server.name],
                    "p50_ms": _median(runs[server.name], "p50_ms"),
                    "p99_ms": _median(runs[server.name], "p99_ms"),
                    "rps": _median(runs[server.name], "rps"),
                }
            for key in ("p50_ms", "p99_ms"):
                a, b = entry["idle"][key], entry["sleeping"][key]
                entry[f"{key[:3]}_ratio"] = b / a if a and b else None
            results["configs"][name] = entry
    finally:
        stop_all([*servers, *extra])
    return results
