"""The one command: `python -m bench.run [--quick | --smoke]` measures and writes the report.

Full run (about 21 minutes on 2 cores): every configuration, 5 interleaved
rounds of 3 s per scenario, latency under tasks, memory, core overhead and a
profile; writes `bench/RESULTS.md` and `bench/results.json`. `--quick` (under
2 minutes, for optimising) measures the baselines and VelociPy only, shorter,
into `bench/quick/`. `--smoke` (seconds, for the test suite) proves the harness
works with the pure-Python generator, into a temporary directory.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import core_overhead, latency, memory, throughput
from bench.configs import BY_NAME, CONFIGS, PY, QUICK, SCENARIOS, SMOKE
from bench.loadgen import run_load, wrk_available, wrk_version
from bench.machine import describe, load_average
from bench.report import write
from bench.servers import ROOT, SERVER_CORE, Server, free_port, start_all, stop_all

HERE = Path(__file__).resolve().parent
OWN = "velocipy/own-server"
OWN_HTTPTOOLS = "velocipy/own-server-httptools"


@dataclass
class Plan:
    """How much of everything one mode measures."""

    configs: tuple[str, ...]
    rounds: int
    duration: float
    warmup: float
    latency_configs: tuple[str, ...]
    latency_rate: float
    latency_duration: float
    latency_rounds: int
    latency_sleep: float
    latency_warmup: float
    idle_connections: int
    idle_configs: tuple[str, ...]
    queued_tasks: int
    task_configs: tuple[str, ...]
    core_number: int
    core_repeat: int
    profile_number: int
    out: Path


#: Latency under tasks is also measured, for reference, where the same task runs with no
#: framework (the bare ASGI app awaits it after its last body message) and on a peer
#: that runs tasks the same way (Starlette): how much of a slow task's effect on p99 is
#: the server's and the event loop's, not VelociPy's. Not bare WSGI: its task runs in
#: close(), on the server's own thread, which a 1 s task would block.
LATENCY_REFERENCES = (
    "bare-asgi/uvicorn-h11",
    "bare-asgi/uvicorn-httptools",
    "starlette/uvicorn-httptools",
)


def plan_for(mode: str) -> Plan:
    all_configs = tuple(c.name for c in CONFIGS)
    if mode == "smoke":
        return Plan(
            SMOKE, 1, 0.3, 0.0, ("velocipy/uvicorn-h11",), 200, 0.3, 1, 0.2, 0.0,
            50, ("velocipy/uvicorn-h11",), 200, ("velocipy/uvicorn-h11",),
            300, 2, 0, Path(tempfile.mkdtemp(prefix="bench-smoke-")),
        )  # fmt: skip
    if mode == "quick":
        return Plan(
            QUICK, 2, 1.0, 1.0, (OWN, "velocipy/uvicorn-httptools"), 500, 2.0, 1, 1.0, 1.0,
            1000, (OWN,), 5000, (OWN,), 5000, 3, 5000, HERE / "quick",
        )  # fmt: skip
    return Plan(
        all_configs, 5, 3.0, 1.0,
        (OWN, OWN_HTTPTOOLS, "velocipy/uvicorn-httptools", "velocipy/gunicorn-gthread",
         *LATENCY_REFERENCES),
        1000, 5.0, latency.ROUNDS, 1.0, latency.WARMUP,
        5000, (OWN, "velocipy/uvicorn-httptools", "bare-asgi/uvicorn-h11"),
        50_000, (OWN,),
        20_000, 5, 50_000, HERE,
    )  # fmt: skip


def ceiling_server() -> Server:
    """The canned-response server each load generator's ceiling is measured against."""
    port = free_port()
    return Server("ceiling", [PY, "-m", "bench.ceiling", "--port", str(port)], port)


def measure_ceiling(
    server: Server, tools: list[str], duration: float, connections: int
) -> dict[str, Any]:
    """Each generator's requests/s against the (started) canned-response server."""
    found: dict[str, Any] = {}
    if server.problem:
        return found
    for tool in tools:
        label = "wrk" if tool == "wrk" else "pure-Python generator"
        found[label] = run_load(tool, server.port, SCENARIOS[0], duration, connections)["rps"]
    return found


def guarded(part: str, measure: Callable[[], Any]) -> Any:
    """Run one part of the benchmark; a crash becomes a recorded failure, not a lost run."""
    try:
        return measure()
    except Exception as error:
        print(f"{part} failed: {error!r}", file=sys.stderr, flush=True)
        return {"status": "failed", "reason": f"{error!r}"[:500]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under 2 minutes, while optimising")
    mode.add_argument("--smoke", action="store_true", help="seconds: checks the harness works")
    parser.add_argument("--out", type=Path, help="directory for RESULTS.md and results.json")
    parser.add_argument(
        "--loadgen", choices=("auto", "wrk", "python"), default="auto",
        help="auto: wrk when installed, else the pure-Python generator (always for --smoke)",
    )  # fmt: skip
    parser.add_argument("--configs", help="comma-separated configuration names to measure")
    parser.add_argument("--scenarios", help="comma-separated scenarios (hello,signup,items)")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to skip: throughput,latency,memory,core"
    )
    parser.add_argument("--connections", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = plan_for(mode)
    if args.out:
        plan.out = args.out
    configs = list(plan.configs)
    if args.configs:
        configs = [name.strip() for name in args.configs.split(",") if name.strip()]
        unknown = [name for name in configs if name not in BY_NAME]
        if unknown:
            print(f"unknown configurations: {unknown}; known: {list(BY_NAME)}", file=sys.stderr)
            return 2
        # a configuration is only meaningful beside its baseline
        for name in list(configs):
            baseline = BY_NAME[name].baseline
            if baseline and baseline not in configs:
                configs.insert(0, baseline)
    scenarios = list(SCENARIOS)
    if args.scenarios:
        wanted = {name.strip() for name in args.scenarios.split(",")}
        scenarios = [s for s in SCENARIOS if s.name in wanted]
    rounds = args.rounds or plan.rounds
    duration = args.duration or plan.duration
    if mode == "smoke" or args.loadgen == "python" or not wrk_available():
        tool = "python"
    else:
        tool = "wrk"
    if args.loadgen == "wrk" and tool != "wrk":
        print("wrk was asked for but is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if tool == "wrk":
        duration = max(1.0, round(duration))  # wrk counts whole seconds
    skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    memory.raise_open_files(max(plan.idle_connections * 2 + 1024, 4096))

    command = "python -m bench.run" + (f" --{mode}" if mode != "full" else "")
    if argv is None and len(sys.argv) > 1:
        command = "python -m bench.run " + shlex.join(sys.argv[1:])
    label = (
        f"wrk {wrk_version()} (1 thread)"
        if tool == "wrk"
        else "bench.pyload (pure-Python asyncio generator)"
    )
    results: dict[str, Any] = {
        "machine": describe(),
        "settings": {
            "mode": mode,
            "command": command,
            "loadgen": tool,
            "loadgen_label": label,
            "connections": args.connections,
            "rounds": rounds,
            "duration": duration,
            "warmup": plan.warmup,
            "configs": configs,
            "scenarios": [s.name for s in scenarios],
        },
    }
    tools = ["python"] if tool == "python" else ["wrk", "python"]
    clock = time.monotonic()
    timings: dict[str, float] = {}
    results["seconds"] = timings
    ceiling = ceiling_server()

    def ceiling_first() -> None:
        results["ceiling"] = measure_ceiling(ceiling, tools, min(duration, 2.0), args.connections)

    if "throughput" not in skip:
        results["throughput"] = throughput.measure(
            configs,
            scenarios,
            tool=tool,
            rounds=rounds,
            duration=duration,
            warmup=plan.warmup,
            connections=args.connections,
            alongside=ceiling,
            first=ceiling_first,
        )
    else:
        try:
            start_all([ceiling])
            ceiling_first()
        finally:
            stop_all([ceiling])
    timings["throughput"], clock = time.monotonic() - clock, time.monotonic()
    latency_configs = list(plan.latency_configs)
    if args.configs:  # only the configurations asked for (their baselines come with them)
        latency_configs = [c for c in latency_configs if c in configs]
    if "latency" not in skip and latency_configs:
        results["latency"] = latency.measure(
            latency_configs,
            rate=plan.latency_rate,
            duration=plan.latency_duration,
            rounds=plan.latency_rounds,
            connections=args.connections,
            sleep=plan.latency_sleep,
            warmup=plan.latency_warmup,
            floor=mode != "smoke",
        )
    timings["latency"], clock = time.monotonic() - clock, time.monotonic()
    if "memory" not in skip:
        rows: list[dict[str, Any]] = []
        idle = [memory.idle_server(name, plan.idle_connections) for name in plan.idle_configs]
        queued = [memory.tasks_server(name, plan.queued_tasks) for name in plan.task_configs]
        try:
            start_all([*idle, *queued])
            for server in idle:
                row = memory.idle_connections(server, plan.idle_connections)
                what = f"{plan.idle_connections:,} idle keep-alive connections"
                note = (
                    f"{row.get('served', 0):,} served, "
                    f"{row.get('open_at_reading', 0):,} open when read"
                    if row["status"] == "ok"
                    else ""
                )
                rows.append({"what": what, "config": server.name, "note": note, **row})
            for server in queued:
                row = memory.queued_tasks(server, plan.queued_tasks, args.connections)
                what = f"{plan.queued_tasks:,} queued background tasks"
                note = f"{row.get('tasks', 0):,} tasks in {row.get('seconds', 0):.1f} s"
                rows.append({"what": what, "config": server.name, "note": note, **row})
        finally:
            stop_all([*idle, *queued])
        results["memory"] = rows
    timings["memory"], clock = time.monotonic() - clock, time.monotonic()
    if "core" not in skip:
        print("core overhead ...", file=sys.stderr, flush=True)
        if SERVER_CORE is not None:  # timed on the core the servers use, like them
            os.sched_setaffinity(0, {int(SERVER_CORE)})
        results["core"] = guarded(
            "core overhead",
            lambda: core_overhead.measure(number=plan.core_number, repeat=plan.core_repeat),
        )
        if plan.profile_number:
            results["profile"] = guarded(
                "profile", lambda: core_overhead.profile("hello", number=plan.profile_number)
            )
    timings["core"] = time.monotonic() - clock
    results["machine"]["load_average_end"] = load_average()
    results["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"
    )
    md_path, json_path = write(results, plan.out)
    print(f"wrote {_show(md_path)} and {_show(json_path)}", file=sys.stderr)
    return 0


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
