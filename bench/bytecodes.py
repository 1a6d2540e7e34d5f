"""Python bytecodes and function calls per request of a server configuration.

`python -m bench.bytecodes velocipy/own-server-httptools signup [--baseline CONFIG] [--top N]`

Why a second count beside `bench.instructions`: an instruction executed inside the
interpreter's loop costs more time than one in C code (each bytecode is an
indirect jump the processor mispredicts often), so two servers with the same
instruction count can differ by half in CPU time. Measured on POST /signup + task:
our httptools path ran 0.97x the bare ASGI app's instructions yet used about 1.4x
its CPU time per request, and ran 1.6x its bytecodes. Bytecodes per request track
the time that instructions miss; the two together say where a cut pays.

Like `bench.instructions` it runs the server twice (a short and a long run of
keep-alive requests) and divides the difference, so start-up and shutdown drop
out; it counts, so the figure does not move with the machine's load. `--top`
lists the functions that run the most bytecodes per request.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.configs import BY_NAME, PY, SCENARIOS, Scenario
from bench.instructions import LONG, SHORT, serve_counted
from bench.servers import ROOT, Server, free_port


def traced_counts(
    name: str,
    scenario: Scenario,
    requests: int,
    *,
    command: Callable[[int], list[str]] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, dict[str, int]]:
    """Bytecodes and calls per function while the server of `name` serves `requests`.

    `command(port)` starts a server that is not one of `bench.configs`' (then `name`
    only labels it); `env` is added to the server's environment (as in
    `bench.instructions.server_instructions`).
    """
    port = free_port()
    argv = BY_NAME[name].command(port) if command is None else command(port)
    if argv[:2] != [PY, "-m"]:
        raise SystemExit(f"{name} is not started as `python -m ...`; cannot trace it")
    with tempfile.TemporaryDirectory(prefix="bench-bytecodes-") as folder:
        out = Path(folder) / "counts.json"
        server = Server(name, [PY, "-m", "bench._trace_bytecodes", *argv[2:]], port)
        server.env = {**(env or {}), "BENCH_BYTECODES_OUT": str(out), "PYTHONHASHSEED": "0"}
        serve_counted(server, 300, "under tracing", scenario, requests)
        if not out.exists():
            raise SystemExit(f"{name} wrote no counts: {server.tail()}")
        counts: dict[str, dict[str, int]] = json.loads(out.read_text())
    return counts


def per_request(
    name: str,
    scenario: Scenario,
    *,
    command: Callable[[int], list[str]] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, dict[str, float]]:
    """Bytecodes and calls per function and request (long run minus short run)."""
    short = traced_counts(name, scenario, SHORT, command=command, env=env)
    long = traced_counts(name, scenario, LONG, command=command, env=env)
    result: dict[str, dict[str, float]] = {}
    for kind in ("ops", "calls"):
        a, b = short[kind], long[kind]
        result[kind] = {
            key: (b.get(key, 0) - a.get(key, 0)) / (LONG - SHORT) for key in set(a) | set(b)
        }
    return result


def _report(name: str, scenario: Scenario, counts: dict[str, dict[str, float]], top: int) -> float:
    total = sum(counts["ops"].values())
    frames = sum(counts["calls"].values())
    print(
        f"{name} {scenario.method} {scenario.path}: {total:,.0f} bytecodes, "
        f"{frames:.1f} calls and resumptions per request"
    )
    ops, calls = counts["ops"], counts["calls"]
    for key in sorted(ops, key=lambda k: -ops[k])[:top]:
        if ops[key] >= 0.5:
            print(f"  {ops[key]:7.1f} {calls.get(key, 0):5.1f}  {key}")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=sorted(BY_NAME), metavar="CONFIG")
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--baseline", choices=sorted(BY_NAME), help="also count this one")
    parser.add_argument("--top", type=int, default=0, help="list the N costliest functions")
    args = parser.parse_args()
    os.chdir(ROOT)
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    ours = _report(args.config, scenario, per_request(args.config, scenario), args.top)
    if args.baseline:
        theirs = _report(args.baseline, scenario, per_request(args.baseline, scenario), args.top)
        print(f"ratio {ours / theirs:.3f} (below 1: {args.config} runs fewer bytecodes)")


if __name__ == "__main__":
    main()
