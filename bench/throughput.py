"""Requests/s of every configuration, interleaved in rounds, and each as a ratio to its baseline.

All servers are started at once (pinned to the server core, idle until
measured), checked, warmed up, then measured round after round in a fixed
order (A B C A B C ...), so each configuration and its baseline are measured
minutes, not hours, apart. Ratios are taken per round, then summarised:
median, min and max.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from typing import Any

from bench.configs import BY_NAME, Scenario
from bench.loadgen import run_load
from bench.servers import Server, free_port, start_all, stop_all


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(
    names: list[str],
    scenarios: list[Scenario],
    *,
    tool: str,
    rounds: int,
    duration: float,
    warmup: float,
    connections: int,
    alongside: Server | None = None,
    first: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the throughput rounds; returns per-configuration, per-scenario results and ratios.

    `alongside` is one more server started (and stopped) with these, and `first`
    runs once they are all up, before any load: how the generator ceiling is
    measured without paying a server start-up of its own.
    """
    servers = [Server(name, BY_NAME[name].command(port), port) for name in names
               for port in [free_port()]]  # fmt: skip
    extra = [alongside] if alongside is not None else []
    results: dict[str, Any] = {}
    try:
        log(f"starting {len(servers)} servers ...")
        start_all([*servers, *extra])
        if first is not None:
            first()
        for server in servers:
            entry: dict[str, Any] = {"status": "ok", "reason": "", "scenarios": {}}
            results[server.name] = entry
            if server.problem:
                entry.update(status="unavailable", reason=server.problem)
                log(f"  {server.name}: unavailable ({server.problem[:160]})")
                continue
            for scenario in scenarios:
                problem = server.check(scenario)
                entry["scenarios"][scenario.name] = {
                    "status": "invalid" if problem else "ok",
                    "reason": problem,
                    "runs": [],
                }
                if problem:
                    log(f"  {server.name} {scenario.name}: invalid ({problem[:160]})")
        live = [s for s in servers if results[s.name]["status"] == "ok"]
        if warmup > 0:
            log(f"warming up ({warmup:g}s per configuration and scenario) ...")
            for scenario in scenarios:
                for server in live:
                    if results[server.name]["scenarios"][scenario.name]["status"] == "ok":
                        _run(server, scenario, results, tool, warmup, connections, keep=False)
        for number in range(1, rounds + 1):
            log(f"round {number}/{rounds} ...")
            for scenario in scenarios:
                for server in live:
                    if results[server.name]["scenarios"][scenario.name]["status"] == "ok":
                        _run(server, scenario, results, tool, duration, connections, keep=True)
    finally:
        stop_all([*servers, *extra])
    _add_summaries(results, scenarios)
    return results


def _run(
    server: Server,
    scenario: Scenario,
    results: dict[str, Any],
    tool: str,
    duration: float,
    connections: int,
    *,
    keep: bool,
) -> None:
    cell = results[server.name]["scenarios"][scenario.name]
    try:
        outcome = run_load(tool, server.port, scenario, duration, connections)
    except Exception as error:  # a crashed server or generator: record it, go on
        outcome = {"rps": None, "failure": repr(error)[:300]}
        cell.update(status="failed", reason=outcome["failure"])
        log(f"  {server.name} {scenario.name}: failed ({outcome['failure']})")
    else:
        if outcome["errors"] or outcome["non_2xx"]:
            cell["reason"] = (
                f"{outcome['errors']} socket errors, {outcome['non_2xx']} non-2xx responses"
            )
        log(f"  {server.name:32} {scenario.name:7} {outcome['rps']:9.0f} req/s")
    if keep:
        cell["runs"].append(outcome)


def _add_summaries(results: dict[str, Any], scenarios: list[Scenario]) -> None:
    for name, entry in results.items():
        baseline = BY_NAME[name].baseline
        for scenario in scenarios:
            cell = entry["scenarios"].get(scenario.name)
            if cell is None:
                continue
            rps = [run["rps"] for run in cell["runs"] if run.get("rps")]
            cell["rps"] = summary(rps)
            cell["p50_ms"] = summary([r["p50_ms"] for r in cell["runs"] if r.get("p50_ms")])
            cell["p99_ms"] = summary([r["p99_ms"] for r in cell["runs"] if r.get("p99_ms")])
            cell["ratio"] = None
            if baseline is None or baseline not in results:
                continue
            base_cell = results[baseline]["scenarios"].get(scenario.name)
            if not base_cell or len(base_cell["runs"]) != len(cell["runs"]):
                continue
            ratios = [
                run["rps"] / base["rps"]
                for run, base in zip(cell["runs"], base_cell["runs"], strict=True)
                if run.get("rps") and base.get("rps")
            ]
            cell["ratio"] = summary(ratios)
