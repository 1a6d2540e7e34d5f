"""Latency under tasks: does a slow background task delay responses?

Each VelociPy configuration runs twice side by side: once with the signup
task doing nothing, once with it sleeping 1 s (`BENCH_TASK_SLEEP=1`). The
pure-Python generator sends `POST /signup` at a fixed rate the server easily
sustains, over 50 keep-alive connections, alternating between the two servers
round after round (fresh processes each round, every other round in the
opposite order). Each measurement first sends `WARMUP` s of load it does not
record: fresh processes then have their first calls behind them, and the
sleeping variant has its steady number of tasks in flight (rate x 1 s) before
anything counts. The medians over rounds of each variant's p50/p99 are
compared as a ratio (the verdict's figure); the per-round ratios (median,
min–max) show how much one round can differ from the next. Medians, not the
percentiles of all rounds' requests pooled: on a shared machine one disturbed
run (a p99 ten times the others) decides a pooled p99, and the median of the
rounds ignores it (see `python -m bench.latency --keep-samples`, which keeps
every latency in the JSON to study such choices).

How far to trust a ratio: the generator's noise floor is measured the same way,
twice a round against `bench.ceiling` (the same canned-response server both
times, at the start and at the end of the round); the ratio of those two is
what this method reads as a difference when there is none, and is reported
beside the others. The bare ASGI app's own ratio (the same task, no framework)
is the other yardstick.

The apps run with `max_tasks_in_flight` raised (`BENCH_MAX_TASKS_IN_FLIGHT`,
read by `bench/apps/velocipy_app.py`): at 1,000 req/s with 1 s tasks about
1,000 tasks are in flight, which is the default bound, where the servers stop
reading requests until tasks finish (backpressure, by design). With the default
bound this scenario would measure that pause, not the task's effect. One extra
line (`default_bound`) runs the first configuration with the default bound and
the sleeping task, to show what the bound does at this load. With
`--serving-thresholds 200,10,35` (';' between several), the first configuration
also runs with the sleeping task and those collector thresholds in place of
`velocipy.adapters._gc.SERVING_THRESHOLDS` (started through `python -m
bench.latency thresholds A,B,C MODULE ARGS...`), so that two choices are
compared in the same rounds.

Alone: `python -m bench.latency --configs velocipy/own-server-httptools
--rounds 5` (`--help` for the rest); prints a table, `--json PATH` keeps it all.
"""

from __future__ import annotations

import argparse
import json
import runpy
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.configs import BY_NAME, PY, SCENARIOS
from bench.loadgen import run_pyload
from bench.servers import Server, free_port, start_all, stop_all

SIGNUP = next(s for s in SCENARIOS if s.name == "signup")

#: `max_tasks_in_flight` for the measured apps: far above the ~1,000 tasks in flight at
#: 1,000 req/s with 1 s tasks, so the bound never pauses the server here; an integer (not
#: "no bound") so the in-flight accounting stays on the measured path.
RAISED_BOUND = 1_000_000
#: The variant that keeps the framework's default bound (see `measure`).
DEFAULT_BOUND = "sleeping, default bound"
#: Seconds of load before each measurement, not recorded: the 1 s task's tasks in flight
#: reach their steady number (rate x sleep) after one second of load; recording from the
#: start would measure a server with fewer, half the measurement's first second.
WARMUP = 1.5
#: Rounds, alone and in the full run (`bench.run`). Three rounds of 5 s let the ratio move by
#: as much as the target's margin: in the full run of git c314b2e the httptools path read
#: 1.21 while alone, 5 rounds, it read 1.04, and the bare app's own ratio was 1.68 there,
#: 0.34-1.90 by round. Four, each after `WARMUP`: one more round for the medians to settle,
#: and an even number, so that each order of the two variants (alternated) comes as often.
#: In the full run that is ~8 minutes for this part instead of ~4.6 (~21 in all).
ROUNDS = 4
#: The variants with other serving thresholds (see `measure`), named this and the thresholds.
THRESHOLDS = "sleeping, serving thresholds "


def run_with_thresholds(thresholds: str, module: str, args: list[str]) -> None:
    """`python -m module args...` with `thresholds` as the server's serving thresholds."""
    import velocipy.adapters._gc as policy

    first, second, third = (int(n) for n in thresholds.split(","))
    policy.SERVING_THRESHOLDS = (first, second, third)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _spread(values: list[float]) -> dict[str, float] | None:
    """Median, min and max of `values` (None when there are none)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _round_ratios(
    idle: list[dict[str, Any]], sleeping: list[dict[str, Any]], key: str
) -> list[float]:
    """sleeping/idle of `key`, round by round (the two were measured in the same round)."""
    return [
        b[key] / a[key] for a, b in zip(idle, sleeping, strict=False) if a.get(key) and b.get(key)
    ]


def _ratio_of(a: float | None, b: float | None) -> float | None:
    return b / a if a and b else None


def measure(
    names: list[str],
    *,
    rate: float,
    duration: float,
    rounds: int,
    connections: int,
    sleep: float = 1.0,
    warmup: float = WARMUP,
    floor: bool = True,
    bound: int | None = RAISED_BOUND,
    default_bound_line: bool = True,
    thresholds: list[str] | None = None,
    keep_samples: bool = False,
) -> dict[str, Any]:
    """p50/p99 of POST /signup with a `sleep`-second task vs a no-op task, per configuration.

    Each measurement sends `warmup` + `duration` s of load and records the last
    `duration` s. `bound` is the apps' `max_tasks_in_flight` (None: the framework's
    default). With `default_bound_line`, the first VelociPy configuration also runs
    with the default bound and the sleeping task, reported as `default_bound`. With
    `floor`, the generator runs twice a round against `bench.ceiling` (the same
    server both times): its p50/p99, and the ratio of those two runs, which is
    the method's own noise in a ratio (1.0 if it had none). With `keep_samples` every
    run keeps its latencies (`samples_ms`), to study the method itself.
    """
    servers: list[Server] = []
    bound_env = {"BENCH_MAX_TASKS_IN_FLIGHT": str(bound)} if bound is not None else {}
    for name in names:
        for variant, seconds in (("idle", 0.0), ("sleeping", sleep)):
            port = free_port()
            server = Server(name, BY_NAME[name].command(port), port)
            server.env = {"BENCH_TASK_SLEEP": str(seconds), **bound_env}
            server.name = f"{name}|{variant}"
            servers.append(server)
    ours = [name for name in names if BY_NAME[name].ours]
    if default_bound_line and bound is not None and ours:
        port = free_port()
        server = Server(ours[0], BY_NAME[ours[0]].command(port), port)
        server.env = {"BENCH_TASK_SLEEP": str(sleep)}
        server.name = f"{ours[0]}|{DEFAULT_BOUND}"
        servers.append(server)
    for chosen in thresholds or () if ours else ():
        port = free_port()
        argv = BY_NAME[ours[0]].command(port)
        if argv[1] != "-m":
            raise SystemExit(f"{ours[0]}: not started as `python -m MODULE`")
        command = [PY, "-m", "bench.latency", "thresholds", chosen, *argv[2:]]
        server = Server(ours[0], command, port)
        server.env = {"BENCH_TASK_SLEEP": str(sleep), **bound_env}
        server.name = f"{ours[0]}|{THRESHOLDS}{chosen}"
        servers.append(server)
    ceiling_port = free_port()
    ceiling = Server(
        "ceiling", [PY, "-m", "bench.ceiling", "--port", str(ceiling_port)], ceiling_port
    )
    extra = [ceiling] if floor else []
    results: dict[str, Any] = {
        "rate": rate,
        "duration": duration,
        "warmup": warmup,
        "rounds": rounds,
        "task_sleep": sleep,
        "max_tasks_in_flight": bound,
        "configs": {},
    }

    def load(port: int) -> dict[str, Any]:
        return run_pyload(
            port, SIGNUP, duration, connections, rate=rate, warmup=warmup, samples=keep_samples
        )

    runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
    floor_runs: dict[str, list[dict[str, Any]]] = {"first": [], "second": []}
    try:
        log(f"latency under tasks: starting {len(servers) + len(extra)} servers ...")
        start_all([*servers, *extra])
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
            # Every other round in the opposite order (no-op task first, then the other way
            # round; the floor's two runs at either end): a drift in the machine's load
            # over a round then weighs on both variants alike, not always on the second.
            order = live if number % 2 else live[::-1]
            if extra and not ceiling.problem:
                floor_runs["first"].append(load(ceiling.port))
            for server in order:
                try:
                    outcome = load(server.port)
                except Exception as error:  # record and go on
                    outcome = {"failure": repr(error)[:300]}
                runs[server.name].append(outcome)
                log(f"  {server.name:40} p50 {outcome.get('p50_ms')} p99 {outcome.get('p99_ms')}")
            if extra and not ceiling.problem:
                floor_runs["second"].append(load(ceiling.port))
        first, second = floor_runs["first"], floor_runs["second"]
        results["generator_floor"] = {
            "p50_ms": _median([*first, *second], "p50_ms"),
            "p99_ms": _median([*first, *second], "p99_ms"),
            "p99_ratio": _ratio_of(_median(first, "p99_ms"), _median(second, "p99_ms")),
            "p99_ratio_by_round": _spread(_round_ratios(first, second, "p99_ms")),
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
                entry[f"{key[:3]}_ratio"] = _ratio_of(a, b)
                entry[f"{key[:3]}_ratio_by_round"] = _spread(
                    _round_ratios(runs[idle.name], runs[sleeping.name], key)
                )
            results["configs"][name] = entry
        for server in servers:
            if server.name.endswith(DEFAULT_BOUND):
                taken = runs[server.name]
                results["default_bound"] = {
                    "config": server.name.split("|")[0],
                    "status": "unavailable" if server.problem else "ok",
                    "reason": server.problem,
                    "runs": taken,
                    **{k: _median(taken, k) for k in ("p50_ms", "p99_ms", "max_ms", "rps")},
                }
            elif THRESHOLDS in server.name:
                name, chosen = server.name.split("|")[0], server.name.split(THRESHOLDS)[1]
                taken = runs[server.name]
                idle_runs = runs[f"{name}|idle"]
                results.setdefault("thresholds", {})[chosen] = {
                    "config": name,
                    "status": "unavailable" if server.problem else "ok",
                    "reason": server.problem,
                    "runs": taken,
                    **{k: _median(taken, k) for k in ("p50_ms", "p99_ms", "max_ms", "rps")},
                    "p99_ratio": _ratio_of(_median(idle_runs, "p99_ms"), _median(taken, "p99_ms")),
                    "p99_ratio_by_round": _spread(_round_ratios(idle_runs, taken, "p99_ms")),
                }
    finally:
        stop_all([*servers, *extra])
    results["floor_runs"] = floor_runs
    return results


def _by_round(spread: dict[str, float] | None) -> str:
    if not spread:
        return "–"
    return f"{spread['median']:.2f} ({spread['min']:.2f}–{spread['max']:.2f})"


def table(results: dict[str, Any]) -> str:
    """The results as a Markdown table: medians over rounds, per-round p99 ratios."""
    task = f"{results['task_sleep']:g} s task"
    lines = [
        f"| configuration | p50 no-op | p50 {task} | p99 no-op | p99 {task} "
        "| p99 ratio (of medians) | p99 ratio by round: median (min–max) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["configs"].items():
        if entry["status"] != "ok":
            lines.append(f"| {name} | {entry['status']}: {entry['reason'][:80]} | | | | | |")
            continue
        idle, sleeping = entry["idle"], entry["sleeping"]
        lines.append(
            f"| {name} | {_ms(idle['p50_ms'])} | {_ms(sleeping['p50_ms'])} | "
            f"{_ms(idle['p99_ms'])} | {_ms(sleeping['p99_ms'])} | "
            f"{_ratio(entry['p99_ratio'])} | {_by_round(entry.get('p99_ratio_by_round'))} |"
        )
    floor = results.get("generator_floor") or {}
    if floor.get("p99_ms") is not None:
        lines.append(
            f"| generator floor: `bench.ceiling`, first run / second run of each round | "
            f"{_ms(floor['p50_ms'])} | | {_ms(floor['p99_ms'])} | | "
            f"{_ratio(floor.get('p99_ratio'))} | {_by_round(floor.get('p99_ratio_by_round'))} |"
        )
    default = results.get("default_bound")
    if default and default["status"] == "ok":
        lines.append(
            f"\nWith the default bound (1,000 tasks in flight), {default['config']}, {task}: "
            f"p50 {_ms(default['p50_ms'])}, p99 {_ms(default['p99_ms'])}, "
            f"max {_ms(default['max_ms'])}, {default['rps'] or 0:.0f} req/s "
            "(backpressure: the server stops reading requests while the bound is reached)."
        )
    for chosen, entry in (results.get("thresholds") or {}).items():
        if entry["status"] != "ok":
            continue
        lines.append(
            f"\nWith serving thresholds ({chosen}), {entry['config']}, {task}: "
            f"p50 {_ms(entry['p50_ms'])}, p99 {_ms(entry['p99_ms'])}; p99 ratio to the "
            f"no-op task {_ratio(entry['p99_ratio'])} (of medians), by round: "
            f"{_by_round(entry['p99_ratio_by_round'])}."
        )
    rounds, duration = results["rounds"], results["duration"]
    lines.append(
        f"\n{rounds} rounds of {duration:g} s per server (after {results.get('warmup', 0):g} s "
        "of load not recorded); medians over rounds. The floor "
        "row is the same canned-response server measured twice a round: its ratio is "
        "what this method reads as a difference when there is none."
    )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return f"{value:.2f} ms" if value is not None else "–"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "–"


#: What `python -m bench.latency` measures by default: issue 14's path, the h11 path and
#: VelociPy on uvicorn httptools, with the bare app on both uvicorn flavours as references.
DEFAULT_CONFIGS = (
    "velocipy/own-server-httptools",
    "velocipy/own-server",
    "velocipy/uvicorn-httptools",
    "bare-asgi/uvicorn-httptools",
    "bare-asgi/uvicorn-h11",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument(
        "--warmup", type=float, default=WARMUP, help="seconds of load first, not recorded"
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds the slow task sleeps")
    parser.add_argument(
        "--bound", default=str(RAISED_BOUND),
        help="the apps' max_tasks_in_flight, or 'default' for the framework's own",
    )  # fmt: skip
    parser.add_argument(
        "--no-default-bound-line", action="store_true",
        help="skip the extra run of the first VelociPy configuration with the default bound",
    )  # fmt: skip
    parser.add_argument(
        "--serving-thresholds",
        help="also run the first VelociPy configuration, sleeping task, with these collector "
        "thresholds while busy ('200,10,35'; ';' between several)",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument(
        "--keep-samples", action="store_true",
        help="keep every latency in the JSON (to study the method: rounds, pooling)",
    )  # fmt: skip
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["thresholds"]:
        run_with_thresholds(argv[1], argv[2], argv[3:])
        return 0
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown configurations: {unknown}; known: {list(BY_NAME)}")
    results = measure(
        names,
        rate=args.rate,
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        sleep=args.sleep,
        warmup=args.warmup,
        bound=None if args.bound == "default" else int(args.bound),
        default_bound_line=not args.no_default_bound_line,
        thresholds=args.serving_thresholds.split(";") if args.serving_thresholds else None,
        keep_samples=args.keep_samples,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
